"""actionable.*: an emergency says what to do; a timely warning gives a tip or a way to report.

An instruction is recognized by its grammar, not by a list of three verbs: a clause that opens
with a verb in the imperative (English or Spanish, after "please", "do not", "never",
"immediately"...), a directive addressed to people ("you should", "students are asked to",
"se recomienda"), a standing order ("shelter-in-place order", "lockdown in effect", "campus is
closed"), or an all-clear ("ALL CLEAR", "resume normal activity").
"""

from __future__ import annotations

import re
import unicodedata

from dispatcher.domain import AlertKind
from dispatcher.policy.text import clauses, fold, tokenize
from dispatcher.policy.verdict import Violation
from dispatcher.policy.vocabulary import word_set

# English verbs whose bare form opens an instruction. Nouns that open news headlines ("Fire",
# "Smoke", "Power", "Water", "Report of") are left out on purpose.
IMPERATIVE_EN = word_set(
    "evacuate leave exit go move proceed head relocate shelter seek take stay remain keep avoid "
    "lock secure close shut turn barricade hide run flee fight silence call text dial report "
    "contact notify tell share follow obey listen monitor check watch look be use walk "
    "travel park drive reroute detour plan allow expect wait return resume reopen come visit "
    "review sign register wear cover wash boil drink conserve limit minimize unplug "
    "prepare gather assemble meet bring carry lie crouch duck drop hold protect get find stop "
    "refrain never always remember consider make ensure store put sanitize disinfect isolate "
    "quarantine pick cancel postpone reschedule log download enable know learn "
    "note avoid yield slow beware steer drain clear continue escort accompany "
    "open fill stock stand kneel cooperate comply do don't dont please "
    "immediately now vacate abandon shelter-in-place remain inform request ask submit "
    "apply layer dress bundle limit hydrate cool warm heed anticipate"
)
# Spanish imperatives (usted and ustedes) and infinitives used as instructions on signs.
IMPERATIVE_ES = word_set(
    "evacue evacuen evacuar salga salgan salir dirijase dirijanse dirigirse refugiese "
    "refugiense refugiarse busque busquen buscar permanezca permanezcan permanecer quedese "
    "quedense quedarse mantengase mantenganse mantenerse evite eviten evitar cierre cierren "
    "cerrar asegure aseguren asegurar apague apaguen apagar escondase escondanse esconderse "
    "corra corran llame llamen llamar marque marquen envie envien reporten reportar "
    "denuncie denuncien denunciar informen comuniquese comuniquense siga sigan seguir "
    "obedezca obedezcan escuche escuchen revise revisen use usen usar utilice utilicen camine "
    "caminen caminar tenga tengan esten regrese regresen regresar vuelva vuelvan "
    "volver reanude reanuden reanudar espere esperen esperar alejese alejense alejarse "
    "protejase protejanse protegerse tome tomen tomar lleve lleven hierva hiervan beba beban "
    "lave laven cubrase cubranse agachese agachense mantenga mantengan "
    "guarde guarden verifique verifiquen consulte consulten preste presten acuda acudan "
    "desaloje desalojen desalojar abandone abandonen procure procuren cuide cuiden cuidese "
    "cuidense vigile vigilen acompane acompanen pida pidan solicite soliciten activen "
    "registre registren proteja protejan ponga pongan vaya vayan entren suba suban "
    "baje bajen muevase muevanse diriga tengan mire miren lea lean descargue descarguen "
    "planifique planifiquen prepare preparen conserve conserven limiten evacuen "
    "resguardese resguardense confinese confinense bloquee bloqueen silencie silencien "
    "apague apaguen corra huya huyan luche luchen intervenga intervengan reunase reunanse "
    "trasladese trasladense acuda notifique notifiquen avise avisen contacte contacten "
    "comparta compartan recuerde recuerden considere consideren asegurese asegurense "
    "estacione estacionen camine caminen aleje alejen ayude ayuden "
    "deje dejen abra abran desconecte desconecten cuelgue cuelguen retire retiren saque "
    "saquen sea sean haga hagan diga digan venga vengan traiga traigan cubra cubran tape tapen "
    "mueva muevan asista asistan cancele cancelen maneje manejen conduzca conduzcan viaje "
    "viajen ande anden quite quiten ignore ignoren desconfie desconfien"
)
VERBS = IMPERATIVE_EN | IMPERATIVE_ES | word_set(
    "enter re-enter reenter approach touch attempt confront engage open use remove hide carry "
    "engrave mark label photograph lock conceal stow secure protect jog bike ride let invite "
    "post install set pay memorize save program ask try choose verify confirm inspect "
    "wrap grab yell scream shout escape crawl sit attend join read activate opt "
    "subscribe see identify describe document preserve vary change alternate intervene assist "
    "speak step look watch check register tell help reduce clean pack restart abstain "
    "stay-alert trust walk travel commute cross park lock"
)
_ALONE = word_set(
    "evacuate shelter run hide fight leave exit go flee stay duck drop evacue evacuen salga "
    "salgan corra corran escondase luche refugiese"
)
# Verbs that also open proper names ("Park Avenue", "Cross Street", "Lock Haven"): they
# count only when a lowercase word follows.
_NAME_LIKE = word_set("park mark walk cross watch sign lock stand drop ride bike run field help")
_FILLERS = word_set(
    "please immediately now also then and or but so otherwise if possible right away again "
    "quickly calmly safely por favor inmediatamente ahora tambien luego y o pero"
)
_NOUN_AFTER = re.compile(r"^(?:report|reports|call|calls|text|walk|use|check|alert|test|watch|help|"
                         r"update|change|lock|set)"
                         r"\s+(?:of|from|for|by|is|was|were|has|have)\b", re.IGNORECASE)

_DIRECTIVE = re.compile(
    r"\b(?:you|everyone|everybody|all|students|faculty|staff|employees|residents|occupants|"
    r"community members|members of the community|people|individuals|anyone|those|motorists|"
    r"drivers|pedestrians|visitors|commuters|we)\b[^.;:!?]{0,40}?\b(?:should|must|need to|"
    r"needs to|have to|has to|may|can|will need to|are (?:advised|asked|urged|encouraged|"
    r"instructed|directed|ordered|required|reminded|requested) to|is (?:advised|asked|urged|"
    r"encouraged|instructed|directed|ordered|required|reminded|requested) to)\b"
    r"|\b(?:are|is) (?:advised|asked|urged|encouraged|instructed|directed|ordered|required|"
    r"reminded|requested) to\b"
    r"|\bwe (?:ask|urge|encourage|recommend|remind|advise)\b"
    r"|\b(?:it is|it's) (?:recommended|advised|important|essential|safest)\b"
    r"|\b(?:debe|deben|debera|deberan|puede|pueden|tiene que|tienen que|se recomienda|"
    r"se aconseja|se pide|se les pide|se le pide|se solicita|se les solicita|se ruega|"
    r"se insta|se les insta|es importante|por favor)\b",
    re.IGNORECASE,
)
# An instruction given as a request: "Chief Delgado asks everyone to stay away", "Public
# Safety is urging people to stay indoors", "Facilities requests that everyone keep clear",
# "la Policía pide a todos evitar el área". The verb that follows must be an instruction.
_REQUEST = re.compile(
    r"\b(?:asks?|asking|asked|urges?|urging|urged|requests?|requesting|requested|encourages?|"
    r"encouraging|encouraged|advises?|advising|advised|reminds?|reminding|reminded|directs?|"
    r"directing|directed|instructs?|instructing|instructed|orders?|ordering|ordered|tells?|"
    r"telling|warns?|warning|wants?|needs?|recommends?|recommending|implores?|calls? on|"
    r"calling on)\s+(?:that\s+)?(?:all\s+|the\s+|any\s+|every\s+|our\s+)?"
    r"(?P<who>everyone|everybody|all|people|persons|students|faculty|staff|employees|"
    r"residents|occupants|community members|members of the (?:campus )?community|"
    r"(?:campus |university )?community|public|anyone|those|you|motorists|drivers|"
    r"pedestrians|visitors|commuters|individuals|guests|parents|patrons|bystanders|"
    r"witnesses)\b(?P<rest>[^.;:!?]{0,120})"
    r"|\b(?:says|said|asks|asked|urges|urged|advises|advised)\s+to\s+(?P<bare>[a-z'-]+)"
    r"|\b(?:pide|piden|pidiendo|solicita|solicitan|insta|instan|recomienda|recomiendan|"
    r"ruega|ruegan|exhorta|exhortan|aconseja|aconsejan|urge|urgen|llama|llaman)\s+"
    r"(?:a\s+)?(?:que\s+)?(?P<quien>todos|todas|toda la comunidad|la comunidad|"
    r"(?:los|las) (?:estudiantes|residentes|personas|empleados|ocupantes|visitantes)|"
    r"el p[uú]blico|quienes|cualquier persona|usted|ustedes)\b(?P<resto>[^.;:!?]{0,60})",
    re.IGNORECASE,
)
_SPANISH_INFINITIVE = re.compile(r"\w+(?:ar|er|ir)(?:se|lo|la|los|las)?", re.IGNORECASE)

_ORDER = re.compile(
    r"\b(?:shelter[- ]in[- ]place|evacuation|lockdown|lock[- ]down|stay[- ]at[- ]home|"
    r"boil[- ]water|stay[- ]away|avoid[- ]the[- ]area|hold[- ]in[- ]place|secure[- ]in[- ]place)"
    r"\b[^.;:]{0,30}\b(?:order|orders|in effect|is in place|required|mandatory|ordered|"
    r"underway|now|advisory|notice)\b"
    r"|\b(?:lockdown|shelter[- ]in[- ]place|evacuate|evacuation)\s*(?:now|immediately)\b"
    r"|\b(?:campus|classes|class|building|buildings|offices|school|university|road|roads|"
    r"events?|activities)\b[^.;:]{0,40}\b(?:is|are|will be|have been|has been|remain|remains)\s+"
    r"(?:closed|canceled|cancelled|suspended|postponed|shut)\b"
    r"|\b(?:orden de (?:evacuaci[oó]n|refugio)|refugio en el lugar|confinamiento)\b"
    r"|\b(?:clases|campus|edificio|universidad)\b[^.;:]{0,40}\b(?:cerrad[oa]s?|"
    r"cancelad[oa]s?|suspendid[oa]s?)\b",
    re.IGNORECASE,
)
_ALL_CLEAR = re.compile(
    r"\ball[- ]clear\b(?![- ]?(?:is|has been) not)|\bresume (?:normal|regular|classes|"
    r"operations|activities|activity|work)\b|\bnormal (?:operations|activities|activity|"
    r"schedule|classes)\b|\b(?:may|can) (?:now |safely )?(?:return|re-enter|reenter|resume|"
    r"go back)\b|\b(?:has|have) been (?:lifted|resolved|cleared|reopened|cancelled|canceled)\b"
    r"|\b(?:is|are) (?:lifted|over|reopened|open again|safe to (?:enter|return))\b"
    r"|\bno longer (?:a |an |in )?(?:threat|danger|effect|active|needed|necessary)\b"
    r"|\b(?:has|have) ended\b|\bthreat (?:has )?(?:ended|passed)\b"
    # "the suspect is clear of campus", "PCSD cleared the area", "concluded their search".
    r"|\b(?:is|are) (?:now )?clear of\b|\bcleared the (?:area|scene|building|buildings|campus)\b"
    r"|\b(?:has |have )?concluded (?:their|its|the) (?:search|response|investigation)\b"
    r"|\bno longer in the (?:area|building|vicinity)\b"
    r"|\btodo despejado\b|\bfin de la (?:alerta|emergencia)\b|\breanud\w+\b|"
    r"\b(?:pueden|puede) (?:regresar|volver|reanudar)\b|\bha (?:terminado|finalizado|sido "
    r"levantad[oa])\b|\bse (?:ha )?levant[oó]\b|\bya no (?:hay|existe)\b",
    re.IGNORECASE,
)
_REPORT_WAY = re.compile(
    r"\b(?:anyone|those|persons?|people|individuals|witnesses)\b[^.;]{0,60}\b(?:information|"
    r"saw|seen|witnessed|knowledge|concerns?)\b[^.;]{0,60}\b(?:call|contact|report|text|email|"
    r"reach|notify|submit|share|should|is asked|are asked|is encouraged|are encouraged)\b"
    r"|\b(?:tips?|information|reports?)\b[^.;]{0,40}\b(?:can|may|should) be (?:submitted|"
    r"reported|made|shared|sent|left|given)\b"
    r"|\b(?:call|contact|text|dial|notify|report to)\s+(?:the\s+)?(?:\w+\s+){0,3}?"
    r"(?:police|911|public safety|security|dispatch|tip line|hotline|authorities)\b"
    r"|\breport\s+(?:it|this|anything|suspicious|concerns?|information|crimes?|incidents?)\b"
    r"|\bsilent ?witness\b|\banonymous(?:ly)? (?:tip|report)"
    r"|\b(?:llame|llamen|comun[ií]quese|comun[ií]quense|contacte|contacten|reporte|reporten|"
    r"denuncie|denuncien|informe|informen)\b[^.;]{0,40}\b(?:polic[ií]a|911|seguridad)\b",
    re.IGNORECASE,
)


# The standard protective actions, as people write them: any case, words glued by ellipses,
# slashes, dashes, emoji or nothing at all ("RUN HIDE FIGHT", "Run/Hide/Fight",
# "area...Seek shelter", "secure-in-place"), English and Spanish (accents folded away).
PROTECTIVE_ACTIONS = (
    "run hide fight", "shelter in place", "secure in place", "lockdown", "lock down",
    "lock doors", "lock the doors", "lock your doors", "lock and barricade", "barricade",
    "evacuate", "evacuate now", "avoid the area", "avoid area", "avoid this area",
    "stay away", "seek shelter", "shelter immediately", "take shelter", "take cover",
    "do not approach", "don't approach", "call 911", "stay indoors", "stay inside",
    "remain indoors", "remain inside", "go indoors", "get inside", "shelter now",
    "corra escondase luche", "corre escondete pelea", "refugiese en el lugar",
    "refugio en el lugar", "permanezca en el lugar", "asegurese en el lugar", "confinamiento",
    "cierre las puertas", "cierren las puertas", "evacue", "evacuen", "evite el area",
    "eviten el area", "evite la zona", "eviten la zona", "alejese", "alejense",
    "mantengase alejado", "busque refugio", "busquen refugio", "refugiese", "cubrase",
    "no se acerque", "no se acerquen", "llame al 911", "llamen al 911", "quedese adentro",
    "permanezca adentro",
)
_GLUE = r"[\W_]*"
_PROTECTIVE = re.compile(
    "|".join(
        _GLUE.join(re.escape(word) for word in phrase.split())
        for phrase in sorted(PROTECTIVE_ACTIONS, key=len, reverse=True)
    ),
    re.IGNORECASE,
)


def _plain(text: str) -> str:
    """Accents removed, case and length otherwise kept ("Evacúe" reads "Evacue")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("\u2019", "'")


def protective_action(text: str) -> bool:
    """True when the text names a standard protective action, however it is written."""
    plain = _plain(text)
    for match in _PROTECTIVE.finditer(plain):
        start, end = match.span()
        # Not the inside of a longer word ("evacuated", "overrun"); glued to the word before
        # only when it starts with a capital ("area...Seek shelter", "areaSeek shelter").
        if end < len(plain) and plain[end].isalpha():
            continue
        if start > 0 and plain[start - 1].isalpha() and not plain[start].isupper():
            continue
        return True
    return False


def has_instruction(text: str) -> bool:
    """True when some clause tells people what to do (or that the danger is over)."""
    if _DIRECTIVE.search(text) or _ORDER.search(text) or _ALL_CLEAR.search(text):
        return True
    if protective_action(text):
        return True
    if any(_requested(m) for m in _REQUEST.finditer(text)):
        return True
    return any(_imperative(c.text) for c in clauses(text))


def instruction_strength(sentence: str) -> int:
    """How plainly a sentence tells people what to do: 3 for a standard protective action,
    2 for a directive, an order, an all clear, a request or a way to report, 1 for any other
    instruction (an imperative clause), 0 for none. A derived short text carries the
    strongest."""
    if protective_action(sentence):
        return 3
    if (
        _DIRECTIVE.search(sentence) or _ORDER.search(sentence) or _ALL_CLEAR.search(sentence)
        or any(_requested(m) for m in _REQUEST.finditer(sentence))
        or has_report_way(sentence)
    ):
        return 2
    return 1 if has_instruction(sentence) else 0


_TO_VERB = re.compile(r"\bto\s+([a-z'-]+)", re.IGNORECASE)


def _requested(match: re.Match[str]) -> bool:
    """True when a request names an action: "asks everyone to avoid", "asks all occupants of
    the Science Center to move", "requests that everyone keep clear", "pide a todos evitar"."""
    if match.group("bare") is not None:
        return fold(match.group("bare")) in VERBS
    rest = match.group("rest")
    if rest is not None:
        to = _TO_VERB.search(rest)
        if to is not None:
            return fold(to.group(1)) in VERBS
        # "requests that everyone keep clear": the verb follows the people at once.
        words = tokenize(rest)
        return bool(words) and fold(words[0].text) in VERBS
    # "pide a todos evitar", "pide a la comunidad que se mantenga alejada".
    for word in tokenize(match.group("resto"))[:4]:
        key = fold(word.text)
        if key in VERBS or _SPANISH_INFINITIVE.fullmatch(key):
            return True
    return False


def has_report_way(text: str) -> bool:
    """True when the text says how to report, in any phrasing we know."""
    return _REPORT_WAY.search(text) is not None


def _imperative(clause: str) -> bool:
    """True when a clause opens (after fillers) with a verb in the imperative."""
    body = clause.strip(" \"'\u201c\u201d\u2018\u2019-\u2013\u2014*\u2022")
    # A header label ("Timely Warning", "ALERT") has been split off at its colon already.
    if _NOUN_AFTER.match(body):
        return False
    tokens = tokenize(body)
    index = 0
    while index < len(tokens) and fold(tokens[index].text.rstrip(".")) in _FILLERS:
        index += 1
    if index >= len(tokens):
        return False
    first = fold(tokens[index].text.rstrip("."))
    rest = [fold(t.text.rstrip(".")) for t in tokens[index + 1 : index + 3]]
    if first in {"do", "don't", "dont", "never", "always", "nunca", "siempre"}:
        # "Do not enter", "Never leave...": whatever follows is the verb.
        return bool(rest) and (first != "do" or rest[0] in {"not", "n't"} or rest[0] in VERBS)
    if first == "no":
        # Spanish "No use los ascensores"; not English "No action needed".
        return bool(rest) and rest[0] in VERBS
    if index + 1 == len(tokens):
        # A clause of one word is a header ("ALERT:") unless it is a protective action.
        return first in _ALONE
    if first in _NAME_LIKE and tokens[index + 1].capitalized:
        return False
    # A third-person form ("evacuates") is not on the list, so "Police evacuates..." is news.
    return first in VERBS


def check(kind: AlertKind, text: str) -> list[Violation]:
    """The actionable rule for one text of one alert kind."""
    if kind is AlertKind.EMERGENCY:
        if has_instruction(text):
            return []
        return [Violation(
            "actionable.no_instruction",
            "An emergency notification must tell people what to do now: evacuate, shelter "
            "in place, avoid the area, lock down, stay indoors, or resume normal activity.",
        )]
    if kind is AlertKind.TIMELY_WARNING:
        if has_instruction(text) or has_report_way(text):
            return []
        return [Violation(
            "actionable.no_safety_tip",
            "A timely warning must give at least one safety tip (walk with others, lock "
            "doors...) or say how to report information (for example, call Campus Police).",
        )]
    if kind is AlertKind.ALL_CLEAR:
        if has_instruction(text):
            return []
        return [Violation(
            "actionable.no_all_clear",
            "An all-clear must say that the danger is over and what people may do now "
            "(resume normal activity, return to the building).",
        )]
    return []
