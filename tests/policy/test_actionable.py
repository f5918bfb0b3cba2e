"""actionable.*: instructions across phrasing, in English and Spanish."""

from __future__ import annotations

import pytest

from tests.policy.helpers import families, rules


@pytest.mark.parametrize(
    "text",
    [
        "Gas leak at Davis Hall. Evacuate now.",
        "Gas leak at Davis Hall. Please leave the building immediately.",
        "Gas leak at Davis Hall. Do not enter the building.",
        "Gas leak at Davis Hall. Everyone should stay away from the area.",
        "Gas leak at Davis Hall. Occupants are directed to exit through the west doors.",
        "Police activity at Lot D. Avoid the area.",
        "Tornado warning. Seek shelter in an interior room.",
        "Lockdown in effect at Washington Hall.",
        "The shelter-in-place order for Lee Hall is in effect.",
        "Campus is closed today because of ice.",
        "Chlorine leak. If you are near the pool, go indoors and close windows.",
        "ALL CLEAR: The gas leak is fixed.",
        "The lockdown has been lifted. Resume normal activities.",
        "Fuga de gas en Davis Hall. Evacúe el edificio ahora.",
        "Persona armada cerca de la biblioteca. Permanezcan en sus salones.",
        "Tormenta eléctrica. Refúgiese en un edificio.",
        "Derrame químico. Se recomienda evitar la zona.",
        "Incendio en Hamilton Hall. Todos deben salir del edificio.",
        "Fuga de gas en Davis Hall. No use los ascensores.",
        "FIN DE LA EMERGENCIA: pueden regresar al edificio.",
    ],
)
def test_emergency_with_instruction(text: str) -> None:
    """Each phrasing counts as telling people what to do."""
    assert "actionable" not in families(text, kind="emergency")


@pytest.mark.parametrize(
    "text",
    [
        "Gas odor reported at the Biology Building.",
        "Tornado warning in effect for the county.",
        "Police are responding to a report of an armed person at the Student Union.",
        "Report of a chemical odor at Davis Hall.",
        "Elevator entrapment at Kelly Hall resolved. No action needed.",
        "Active threat reported near the Foster Center.",
        "Se reporta olor a gas en el Edificio de Biología.",
        "Entre las 8 y las 10 habrá trabajos en la Calle Clark.",
    ],
)
def test_emergency_without_instruction(text: str) -> None:
    """News without an instruction is actionable.no_instruction."""
    assert "actionable.no_instruction" in rules(text, kind="emergency")


@pytest.mark.parametrize(
    "text",
    [
        "Robbery near Lot C. Walk with others after dark.",
        "Robbery near Lot C. Anyone with information should call Campus Police.",
        "Robbery near Lot C. Information can be reported anonymously online.",
        "Robbery near Lot C. Never leave belongings unattended.",
        "Robo cerca del Lote C. Camine acompañado de noche.",
        "Robo cerca del Lote C. Llame a la policía si tiene información.",
    ],
)
def test_timely_warning_with_tip(text: str) -> None:
    """A tip or a way to report satisfies a timely warning."""
    assert "actionable" not in families(text)


@pytest.mark.parametrize(
    "text",
    [
        "A burglary occurred in Pine Hall on Thursday night.",
        "Robbery near Oak Street Friday. Suspect: male, 20s, dark clothing.",
        "Ocurrió un robo en Pine Hall el jueves por la noche.",
    ],
)
def test_timely_warning_without_tip(text: str) -> None:
    """A crime report without tip or reporting line is actionable.no_safety_tip."""
    assert "actionable.no_safety_tip" in rules(text)


def test_all_clear_kind() -> None:
    """An all-clear must say the danger is over; advisories need no instruction."""
    assert "actionable.no_all_clear" in rules("Update on Davis Hall.", kind="all_clear",
                                              references="a1")
    assert families("All clear at Davis Hall.", kind="all_clear", references="a1") == set()
    assert families("The safety fair is Thursday.", kind="advisory") == set()


def test_translation_judged_on_its_own() -> None:
    """A Spanish translation without an instruction is flagged on its field."""
    from tests.policy.helpers import lint

    verdict = lint(
        "Gas leak at Davis Hall. Evacuate now.",
        kind="emergency",
        translations={"es": {"text": "Fuga de gas en Davis Hall."}},
    )
    [v] = [v for v in verdict["violations"] if v["rule"].startswith("actionable")]
    assert v["field"] == "translations.es.text" and v["language"] == "es"
