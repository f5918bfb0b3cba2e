"""Word lists the rules share: cues around names, places, roles and protective actions.

Every entry is folded (lowercase, no accents, no trailing dot) the way `text.fold` folds.
"""

from __future__ import annotations


def word_set(text: str) -> frozenset[str]:
    """A word set from a space-separated string."""
    return frozenset(text.split())


# Honorifics: the word after them is a person.
PERSON_TITLES = word_set(
    "mr mrs ms miss mx dr prof professor sr sra srta dra senor senora senorita doctor doctora "
    "coach rev reverend profesor profesora don dona"
)

# Officials named in their role (a contact, a spokesperson): not a victim.
OFFICIAL_TITLES = word_set(
    "officer ofc detective det sergeant sgt lieutenant lt captain capt chief deputy corporal cpl "
    "vice mayor governor senator congressman congresswoman councilman councilwoman "
    "councilmember commissioner chaplain "
    "trooper investigator agent dean president chancellor provost director coordinator "
    "commander cmdr sheriff marshal inspector oficial agente sargento teniente capitan jefe jefa "
    "rector rectora decano decana director directora coordinador coordinadora superintendent "
    "spokesperson spokesman spokeswoman vocero vocera"
)

# Roles that point at the person an alert is about (victim, complainant, witness).
PERSON_ROLES = word_set(
    "student victim complainant witness roommate resident freshman sophomore junior senior "
    "employee survivor girlfriend boyfriend friend classmate suitemate neighbor neighbour "
    "husband wife partner mother father son daughter sister brother teammate coworker "
    "co-worker colleague tenant occupant patient alumnus alumna staffer ra "
    "estudiante victima testigo alumno alumna residente empleado empleada companero "
    "companera novio novia amigo amiga vecino vecina esposo esposa denunciante sobreviviente "
    "inquilino inquilina paciente"
)
NAMING_WORDS = word_set("named called identified llamado llamada identificado identificada")

# Cues that a person named nearby is the suspect, whose description and name may be published.
SUSPECT_CUES = word_set(
    "suspect suspects arrested wanted charged perpetrator offender assailant attacker robber "
    "gunman shooter intruder fugitive sought subject sospechoso sospechosa sospechosos "
    "arrestado arrestada buscado buscada detenido detenida agresor agresora"
)

# Words after a name that say the person was harmed or reported it.
VICTIM_PREDICATES = word_set(
    "robbed assaulted attacked injured hurt killed found struck approached harassed threatened "
    "followed stalked groped touched stabbed shot hospitalized transported taken beaten punched "
    "hit raped kidnapped abducted missing victimized confronted grabbed pushed bitten burned "
    "burglarized mugged drugged fondled choked strangled cut wounded treated rescued located "
    "reported told said stated called contacted described informed notified disclosed "
    "grazed kicked slapped tackled knocked shoved chased cornered dragged bruised scratched "
    "pinned "
    "asaltado asaltada robado robada agredido agredida atacado atacada herido herida "
    "lesionado lesionada golpeado golpeada amenazado amenazada acosado acosada denuncio "
    "reporto informo dijo declaro llamo"
)
LINKING_VERBS = word_set("was is were has had been fue es esta estaba ha habia")

# Place words: a capitalized run that holds one of these is a place or a body, not a person.
PLACE_SUFFIXES = word_set(
    "hall halls library libraries center centre building bldg street st avenue ave boulevard "
    "blvd road rd drive lane ln court ct way place pl circle cir terrace ter parkway pkwy "
    "highway hwy route trail row square sq park field fields stadium gym gymnasium arena "
    "commons house houses tower towers apartments apartment village lot lots garage deck plaza "
    "quad quadrangle chapel auditorium theater theatre union dining complex pavilion lab labs "
    "laboratory laboratories institute school college university campus gate bridge gardens "
    "garden memorial museum observatory clinic hospital residence residences annex wing lodge "
    "station pool natatorium fieldhouse recreation rec mall green lawn arboretum greenhouse "
    "cafe cafeteria dorm dormitory dormitories inn suites manor estates crossing court courts "
    "market store pharmacy bank restaurant grill bar pub diner hotel motel church cathedral "
    "mosque synagogue temple cemetery building's hall's library's center's forum atrium "
    "conservatory academy stop depot terminal airport harbor pier beach lake river creek "
    "woods forest hill heights point landing yard yards exchange shops shop mart "
    "boathouse playhouse stadium's tunnel walk walkway path promenade esplanade oval ring "
    "bookstore ballroom lounge kitchen cafe's plant facility facilities "
    "fountain statue monument sculpture mural plaque obelisk carillon neighborhood "
    "neighbourhood district quarter precinct corridor courtyard"
)
PLACE_PREFIXES = word_set(
    "lot building gate route mount mt lake fort ft camp saint st san santa calle avenida av "
    "edificio biblioteca residencia parque centro lote estacionamiento plaza salon escuela "
    "facultad campus camino paseo universidad colegio hospital clinica iglesia torre puerta "
    "parking garage pier dock bay bldg"
)
# Bodies and organizations: a run with one of these names an office, not a person.
ORGANIZATION_WORDS = word_set(
    "police department dept office services service safety security counseling health title "
    "ix affairs life residential housing facilities management emergency operations team club "
    "association council foundation company inc corp llc co university college state county "
    "city federal national weather fire rescue ems red cross services administration "
    "dispatch patrol university's campus communications athletics program programs "
    "center division unit board committee society fraternity sorority chapter bureau agency "
    "authority district transit transportation alert alerts policia departamento oficina "
    "servicios seguridad salud universidad condado ciudad bomberos emergencias "
    # Laws and awards named after people ("the Jeanne Clery Act"), and transit lines ("the
    # Red Line"): the name belongs to the thing.
    "act acts law laws amendment bill award awards scholarship prize fund line lines ley "
    # Apps and platforms: "the victim's Instagram account".
    "instagram snapchat facebook twitter tiktok venmo discord whatsapp linkedin tinder grindr "
    "bumble hinge uber lyft doordash"
)

# Capitalized words that start sentences and headers of alerts: never a name by themselves.
ALERT_WORDS = word_set(
    "alert alerts emergency emergencies warning warnings timely update updates notice advisory "
    "all clear test drill exercise urgent important breaking reminder information info "
    "suspect suspects description male female man woman men women boy girl unknown "
    "police campus public safety students student faculty staff residents visitors "
    "shelter evacuate evacuation lockdown lock stay avoid walk use report call text do don't "
    "never always please be keep remain leave go move follow seek take turn close secure hide "
    "run fight expect plan check monitor wear watch look listen return resume beware "
    "fire smoke gas chlorine leak odor tornado storm flood flooding snow ice wind power outage "
    "water main break hazard hazardous materials spill robbery burglary assault theft thefts "
    "arson vandalism harassment stalking shooting shots armed threat active shooter "
    "sexual aggravated motor vehicle hate crime crimes incident incidents activity "
    "alerta aviso advertencia oportuna emergencia actualizacion simulacro prueba "
    "sospechoso sospechosa descripcion hombre mujer robo asalto hurto incendio humo fuga "
    "evacue evacuen evacuar permanezca permanezcan evite eviten salga salgan llame llamen "
    "siga sigan refugiese refugiense busque busquen quedese quedense cierre cierren "
    "the a an and or of in on at near by for with from to this that these those there "
    "el la los las un una y o de del en cerca por para con al su sus "
    "north south east west northeast northwest southeast southwest central upper lower main "
    "new old "
    "monday tuesday wednesday thursday friday saturday sunday today tonight tomorrow yesterday "
    "lunes martes miercoles jueves viernes sabado domingo hoy "
    "january february march july september october november december "
    "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre "
    "am pm a.m p.m noon midnight "
    "hispanic latino latina latinx asian caucasian african american arab native indigenous "
    "middle eastern hispano hispana asiatico asiatica afroamericano afroamericana "
    "red blue silver gold yellow orange purple pink tan dark light "
    "ford chevrolet chevy toyota honda nissan hyundai kia jeep dodge ram gmc subaru mazda "
    "volkswagen vw bmw mercedes audi tesla lexus acura buick cadillac chrysler mitsubishi volvo "
    "iphone ipad macbook airpods apple samsung dell lenovo hp "
    "god jesus christ allah english spanish espanol ingles "
    "covid covid-19 coronavirus flu influenza measles norovirus mpox "
    "ras rd ta tas cso csos "
    # Named storms ("Hurricane Milton"): the storm's name is no person's.
    "hurricane tropical typhoon cyclone huracan tormenta"
)
# Month words that are also given names: not a name when a day number follows.
MONTH_NAMES = word_set("april may june august")

# Words that join parts of one name ("Juan de la Cruz", "Ludwig van Beethoven").
NAME_PARTICLES = word_set(
    "de del la las los van von der den da di du le bin ben al el y dos das della dei degli "
    "delle ibn bint binti"
)
NAME_SUFFIXES = word_set("jr sr ii iii iv")

# Prepositions that put the next capitalized words on the map ("near Adams", "at Wells Fargo").
LOCATION_PREPOSITIONS = word_set(
    "at near on in by behind outside inside across along toward towards off past into onto "
    "around between beside opposite from en cerca junto frente detras dentro fuera hacia "
    "entre sobre via"
)

# Race and sex words: a suspect description made only of these helps no one.
RACE_WORDS = word_set(
    "white black hispanic latino latina latinx asian caucasian african american arab "
    "middle eastern native indigenous biracial blanco blanca negro negra hispano hispana "
    "latinoamericano latinoamericana asiatico asiatica afroamericano afroamericana moreno morena"
)
SEX_WORDS = word_set(
    "male female man woman men women boy girl males females hombre mujer hombres mujeres "
    "varon masculino femenino chico chica"
)
