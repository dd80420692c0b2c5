"""The words of the target language: a regular, Spanish-like language made for the translation corpus.

Every English word of the story lexicon (`lexicon.py`) has one entry here; `translation.py` renders
an English parse tree with them and `target_check.py` reads target sentences back with them. The
vocabulary is borrowed from Spanish, the grammar is simpler and has no exceptions:

    nouns        one gender each ("m"/"f"), a singular and a plural form    perro/perros (m), casa/casas (f)
    adjectives   "-o" ones have four forms (rojo roja rojos rojas), the rest two (verde verdes);
                 materials are two invariable words ("de madera")
    verbs        third person only: singular and plural = singular + "n" (corre/corren, se esconde/se esconden)
    determiners  agree in gender and number (el la los las, un una, este esta, estos estas, unos unas),
                 or are invariable (cada, dos, tres, cuatro)

Some English words become two or three target words ("near" -> "cerca de", "hide" -> "se esconde",
"wooden" -> "de madera"): each of them is aligned to the one English word. There are no contractions
("de el", never "del"), so every target word comes from exactly one English word.
"""

from __future__ import annotations

from dataclasses import dataclass

from minitx.corpus import lexicon as en

MASCULINE, FEMININE = "m", "f"


@dataclass(frozen=True)
class TargetNoun:
    """A target noun: its two forms and its gender."""

    singular: str
    plural: str
    gender: str


def _nouns(words: str) -> dict[str, TargetNoun]:
    """ "dog=perro:m mouse=ratón/ratones:m" -> {"dog": TargetNoun("perro", "perros", "m"), ...}."""
    nouns = {}
    for item in words.split():
        english, _, rest = item.partition("=")
        forms, _, gender = rest.partition(":")
        singular, _, plural = forms.partition("/")
        nouns[english] = TargetNoun(singular, plural or _plural(singular), gender)
    return nouns


def _plural(word: str) -> str:
    """perro -> perros, flor -> flores, feliz -> felices (accented endings are spelt out in the lists)."""
    if word[-1] in "aeiouáéíóú":
        return word + "s"
    if word.endswith("z"):
        return word[:-1] + "ces"
    return word + "es"


#: English singular noun -> target noun (the English plural maps to the target plural).
NOUNS: dict[str, TargetNoun] = _nouns(
    # people
    "boy=chico:m man=hombre:m king=rey/reyes:m prince=príncipe:m father=padre:m brother=hermano:m uncle=tío:m "
    "girl=chica:f woman=mujer/mujeres:f queen=reina:f princess=princesa:f mother=madre:f sister=hermana:f "
    "aunt=tía:f child=niño:m baby=bebé:m teacher=maestro:m farmer=granjero:m friend=amigo:m doctor=médico:m "
    "baker=panadero:m sailor=marinero:m "
    # animals
    "dog=perro:m cat=gato:m mouse=ratón/ratones:m goose=ganso:m sheep=oveja:f fish=pez/peces:m fox=zorro:m "
    "wolf=lobo:m bird=pájaro:m rabbit=conejo:m puppy=cachorro:m kitten=gatito:m duck=pato:m horse=caballo:m "
    "cow=vaca:f pig=cerdo:m frog=rana:f bear=oso:m owl=búho:m elephant=elefante:m unicorn=unicornio:m "
    "tiger=tigre:m lion=león/leones:m monkey=mono:m hen=gallina:f ox=buey/bueyes:m snail=caracol:m "
    "turtle=tortuga:f dragon=dragón/dragones:m squirrel=ardilla:f "
    # things
    "ball=pelota:f box=caja:f hat=sombrero:m kite=cometa:f boat=barco:m car=coche:m book=libro:m cup=taza:f "
    "bell=campana:f drum=tambor:m key=llave:f coat=abrigo:m shoe=zapato:m umbrella=sombrilla:f toy=juguete:m "
    "flower=flor:f leaf=hoja:f star=estrella:f basket=cesta:f bag=bolsa:f feather=pluma:f shell=concha:f "
    "stone=piedra:f ribbon=cinta:f blanket=manta:f lamp=lámpara:f "
    # food
    "apple=manzana:f egg=huevo:m cake=pastel:m cookie=galleta:f sandwich=bocadillo:m carrot=zanahoria:f "
    "pie=tarta:f banana=plátano:m "
    # places
    "garden=jardín/jardines:m park=parque:m house=casa:f forest=bosque:m river=río:m hill=colina:f "
    "pond=estanque:m kitchen=cocina:f school=escuela:f field=campo:m castle=castillo:m island=isla:f "
    "bridge=puente:m"
)

#: English base verb -> the target verb's singular (third person); the plural adds "n" to the
#: conjugated word (the first word that is not "se"): "se esconde" -> "se esconden", "deja caer" -> "dejan caer".
VERBS: dict[str, str] = {
    # intransitive
    "run": "corre", "jump": "salta", "sleep": "duerme", "sing": "canta", "laugh": "ríe", "swim": "nada",
    "play": "juega", "cry": "llora", "fly": "vuela", "hide": "se esconde", "dance": "baila", "wait": "espera",
    "go": "va", "smile": "sonríe", "sit": "se sienta", "walk": "camina", "rest": "descansa", "shout": "grita",
    "dream": "sueña", "hop": "brinca",
    # transitive
    "see": "ve", "like": "aprecia", "chase": "persigue", "find": "encuentra", "have": "tiene", "watch": "mira",
    "catch": "atrapa", "want": "quiere", "love": "ama", "help": "ayuda", "hold": "sostiene", "carry": "lleva",
    "push": "empuja", "kiss": "besa", "fix": "arregla", "follow": "sigue", "hug": "abraza", "meet": "conoce",
    "paint": "pinta", "eat": "come", "climb": "escala", "visit": "visita", "call": "llama", "miss": "extraña",
    "wash": "lava", "touch": "toca", "pull": "arrastra", "open": "abre", "drop": "deja caer",
}
REFLEXIVE = "se"


def verb_form(singular: str, number: str) -> list[str]:
    """The words of a verb for a singular or plural subject: ("se esconde", "pl") -> ["se", "esconden"]."""
    words = singular.split()
    if number == "pl":
        at = 1 if words[0] == REFLEXIVE else 0
        words[at] += "n"
    return words


#: English adjective -> the target adjective's masculine singular (materials: two words, invariable).
ADJECTIVES: dict[str, str] = {
    # opinion
    "lovely": "precioso", "nice": "simpático", "good": "bueno", "bad": "malo", "pretty": "bonito",
    "funny": "gracioso", "silly": "tonto", "kind": "amable", "brave": "valiente", "clever": "listo",
    "happy": "feliz", "sad": "triste", "sleepy": "soñoliento", "hungry": "hambriento", "grumpy": "huraño",
    "gentle": "dulce", "shy": "tímido", "honest": "honrado", "lucky": "afortunado", "naughty": "travieso",
    "cheerful": "alegre", "wonderful": "maravilloso", "beautiful": "hermoso", "ugly": "feo", "angry": "enfadado",
    "awful": "horrible", "useful": "útil",
    # size
    "big": "grande", "little": "pequeño", "small": "menudo", "tiny": "diminuto", "huge": "inmenso",
    "tall": "alto", "short": "bajo", "enormous": "enorme",
    # age
    "old": "viejo", "young": "joven", "new": "nuevo", "ancient": "antiguo",
    # shape
    "round": "redondo", "square": "cuadrado", "flat": "plano", "pointy": "puntiagudo",
    # colour
    "red": "rojo", "blue": "azul", "green": "verde", "yellow": "amarillo", "orange": "anaranjado",
    "pink": "rosado", "purple": "morado", "brown": "marrón", "black": "negro", "white": "blanco",
    "grey": "gris", "golden": "dorado", "silver": "plateado",
    # material: "de" + a material noun, the same for every gender and number
    "wooden": "de madera", "woollen": "de lana", "plastic": "de plástico", "leather": "de cuero",
    "paper": "de papel",
}
#: Plurals the -s/-es/-ces rule gets wrong (a written accent moves).
ADJECTIVE_PLURALS = {"joven": "jóvenes", "marrón": "marrones"}


def adjective_form(base: str, gender: str, number: str) -> list[str]:
    """The words of an adjective agreeing with a noun: ("rojo", "f", "pl") -> ["rojas"]; ("verde", "f", "pl")
    -> ["verdes"]; ("de madera", ...) -> ["de", "madera"]."""
    if " " in base:
        return base.split()
    word = base
    if word.endswith("o") and gender == FEMININE:
        word = word[:-1] + "a"
    if number == "pl":
        word = ADJECTIVE_PLURALS.get(word) or _plural(word)
    return [word]


def adjective_forms(base: str) -> dict[str, frozenset[tuple[str, str]]]:
    """Each one-word form of an adjective -> the (gender, number) pairs it agrees with.

    adjective_forms("rojo")["roja"] == {("f", "sg")}; adjective_forms("verde")["verde"] == {("m", "sg"), ("f", "sg")}
    """
    forms: dict[str, set[tuple[str, str]]] = {}
    for gender in (MASCULINE, FEMININE):
        for number in ("sg", "pl"):
            (word,) = adjective_form(base, gender, number)
            forms.setdefault(word, set()).add((gender, number))
    return {word: frozenset(features) for word, features in forms.items()}


#: English determiner -> its target forms by (gender, number); invariable ones give one word for all.
DETERMINERS: dict[str, dict[tuple[str, str], str]] = {
    "the": {("m", "sg"): "el", ("f", "sg"): "la", ("m", "pl"): "los", ("f", "pl"): "las"},
    "a": {("m", "sg"): "un", ("f", "sg"): "una"},
    "this": {("m", "sg"): "este", ("f", "sg"): "esta"},
    "these": {("m", "pl"): "estos", ("f", "pl"): "estas"},
    "some": {("m", "pl"): "unos", ("f", "pl"): "unas"},
    "every": {("m", "sg"): "cada", ("f", "sg"): "cada"},
    "two": {("m", "pl"): "dos", ("f", "pl"): "dos"},
    "three": {("m", "pl"): "tres", ("f", "pl"): "tres"},
    "four": {("m", "pl"): "cuatro", ("f", "pl"): "cuatro"},
}
DETERMINERS["an"] = DETERMINERS["a"]

#: English personal pronoun (its subject form) -> (subject form, object form before the verb, form after a
#: preposition). The object form is a clitic: it goes right before the verb ("Mia lo ve" = "Mia sees him").
PRONOUNS: dict[str, tuple[str, str, str]] = {
    "he": ("él", "lo", "él"),
    "she": ("ella", "la", "ella"),
    "it": ("ello", "lo", "ello"),
    "they": ("ellos", "los", "ellos"),
}
#: The gender and number a predicate adjective takes after each subject pronoun ("ello" as masculine).
PRONOUN_FEATURES = {"él": ("m", "sg"), "ella": ("f", "sg"), "ello": ("m", "sg"), "ellos": ("m", "pl")}

#: Prepositions; several are two or three words, all aligned to the one English preposition.
PREPOSITIONS: dict[str, str] = {
    "in": "en", "on": "sobre", "under": "debajo de", "near": "cerca de", "behind": "detrás de", "by": "junto a",
    "beside": "al lado de", "into": "dentro de", "over": "por encima de", "with": "con",
}
ADVERBS: dict[str, str] = {
    "happily": "felizmente", "slowly": "lentamente", "quickly": "rápidamente", "quietly": "silenciosamente",
    "loudly": "ruidosamente", "sadly": "tristemente", "softly": "suavemente", "gladly": "gustosamente",
}
OPENERS: dict[str, str] = {
    "then": "entonces", "later": "luego", "soon": "pronto", "suddenly": "súbitamente", "today": "hoy",
    "finally": "finalmente", "afterwards": "después", "meanwhile": "mientras tanto", "now": "ahora",
}
RELATIVE = "que"  # "who" and "that" alike
COPULA = "es"  # is/are before an adjective: es/son
LOCATIVE_COPULA = "está"  # is/are before a prepositional phrase: está/están
THERE = "allí"  # "there" of "there is"
EXISTENTIAL = "hay"  # "is"/"are" of "there is": one form for both numbers
QUESTION = "acaso"  # "does"/"do" of a question: a question particle before the subject
PLURAL_COPULA = {COPULA: "son", LOCATIVE_COPULA: "están"}


def _check_complete() -> None:
    """Every English word has a translation (so a new English word cannot be forgotten here)."""
    missing = [noun.singular for noun in en.NOUNS if noun.singular not in NOUNS]
    missing += [verb for verb in (*en.INTRANSITIVE_VERBS, *en.TRANSITIVE_VERBS) if verb not in VERBS]
    missing += [adj for adjectives in en.ADJECTIVES.values() for adj in adjectives if adj not in ADJECTIVES]
    missing += [word for word in en.DETERMINERS if word not in DETERMINERS]
    missing += [word for word in en.PREPOSITIONS if word not in PREPOSITIONS]
    missing += [word for word in en.ADVERBS if word not in ADVERBS]
    missing += [word for word in en.OPENERS if word not in OPENERS]
    if missing:
        raise ValueError(f"target lexicon: no translation for {missing}")


_check_complete()
