"""The words the request parser (:mod:`lure.text.parser`) recognises, as compiled patterns.

Each pattern matches whole words of a lower-cased request. Degradation phrases map to a task per
modality; the other lists are modality words, clean statements, reconstruct-only words, vague
repair words, scale factors, negators, command verbs, and degradations LURE was not trained for.
"""

from __future__ import annotations

import re

from lure.text.vocabulary import INFRARED, VISIBLE

IGNORE = "-"  # a term that is a scene description on this modality, not a degradation
_V, _I = VISIBLE, INFRARED
SR = "sr"  # super-resolution with the factor still to be resolved

#: Degradation phrases → task per modality (a missing modality means "not defined there").
_DEGRADATIONS: list[tuple[str, dict[int, str]]] = [
    # multi-word phrases first (they are consumed before their parts are tried)
    (r"washed[- ]?out highlights?|blown[- ]?out highlights?|(?:blown|clipped|saturated|burn(?:ed|t)[- ]?out) highlights?", {_V: "oe"}),
    (r"(?:not enough|insufficient|too little|lack of|lacking|lacks|poor|weak|bad|low) (?:light|lighting|illumination)", {_V: "ll"}),
    (r"(?:not enough|insufficient|too little|lack of|lacking|lacks|poor|weak|low|little|no|reduced|limited) contrast", {_I: "lc"}),
    (r"(?:increase|boost|enhance|improve|raise|stretch|restore|strengthen|more)(?: the| its)? contrast|contrast (?:enhancement|stretching|boost)", {_I: "lc"}),
    (r"(?:increase|boost|raise|improve)(?: the| its)? (?:brightness|exposure|illumination)|light(?:en)? up", {_V: "ll"}),
    (r"(?:reduce|lower|decrease|tone down|cut)(?: the| its)? (?:brightness|exposure|glare)", {_V: "oe"}),
    (r"too much (?:light|exposure|brightness)|(?:too|overly|excessively|extremely|very) (?:bright|light)|over[- ]?lit", {_V: "oe"}),
    (r"(?:increase|improve|raise|boost|enhance)(?: the| its)? resolution|(?:higher|high)[- ]resolution version|to (?:a )?higher resolution", {_I: SR}),
    (r"low[- ]?res(?:olution)?|lo[- ]?res|poor resolution|coarse resolution|reduced resolution", {_I: SR}),
    (r"super[- ]?resol(?:ve|ved|ving|ution)|super[- ]?res\b", {_I: SR}),
    (r"low[- ]?light|low[- ]?lit|low illumination|(?:poorly|badly|dimly|barely|under)[- ]?lit|unlit", {_V: "ll"}),
    (r"under[- ]?expos(?:ed|ure)", {_V: "ll"}),
    (r"over[- ]?expos(?:ed|ure)|overly exposed", {_V: "oe"}),
    # single words
    (r"dark(?:er|ened|ness)?|dim(?:ly|med)?|gloomy|shadowy|dusk|twilight|brighten(?:ed|ing)?|lighten(?:ed|ing)?", {_V: "ll"}),
    (r"night(?:time|[- ]time)?|nocturnal", {_V: "ll", _I: IGNORE}),
    (r"haz(?:e|y|iness|ed)|de[- ]?haz(?:e|ed|ing)|fog(?:gy|ged)?|de[- ]?fog(?:ged|ging)?|mist(?:y)?|smog(?:gy)?|smok(?:y|e)|murky", {_V: "hz"}),
    (r"glare|glaring|dazzl(?:ing|ed)|bleached|blown[- ]?out|burn(?:ed|t)[- ]?out|darken(?:ed|ing)?", {_V: "oe"}),
    (r"washed[- ]?out", {_V: "oe", _I: "lc"}),
    (r"flat|faint|dull|muddy|indistinct", {_I: "lc"}),
    (r"blur(?:ry|red|riness|ring)?|de[- ]?blur(?:red|ring)?|fuzzy|pixel+ated|unsharp|sharpen(?:ed|ing)?|soft", {_I: SR}),
    (r"up[- ]?scal(?:e|ed|ing)|up[- ]?sampl(?:e|ed|ing)|enlarg(?:e|ed|ing)|magnif(?:y|ied)|down[- ]?(?:sampled|scaled)", {_I: SR}),
]

_UNSUPPORTED = (
    r"motion blur(?:red)?|out of focus|defocus(?:ed)?|camera shake|shak(?:y|en)|lens flare|"
    r"colou?r (?:cast|shift)|dead pixels?|hot pixels?|salt[- ]and[- ]pepper|"
    r"rain(?:s|y|ing|ed|drops?|streaks?|fall)?|de[- ]?rain(?:ing)?|snow(?:s|y|ed|fall|flakes?|ing)?|hail|sleet|"
    r"nois(?:e|y)|de[- ]?nois(?:e|ed|ing)|grain(?:y)?|speckle[sd]?|jpe?g|compress(?:ed|ion)|"
    r"artifacts?|artefacts?|block(?:y|iness)|strip(?:e|es|ed|ing)|banding|sandstorm|dust(?:y)?|underwater|"
    r"tint(?:ed)?|vignett(?:e|ing)|flicker(?:ing)?|distort(?:ed|ion)|warp(?:ed)?|occlu(?:ded|sion)|"
    r"scratch(?:ed|es)?|moir[eé]|inpaint(?:ing)?|colou?ri[sz](?:e|ation)|"
    r"x[- ]?ray|ultraviolet|depth map"
)

#: "Clean" statements that contradict a degradation on the same modality.
_CLEAN_STRONG = (
    r"(?:is|are|looks?|seems?|'s|be|was|appears?|both|all|everything|otherwise) (?:totally |perfectly |already |quite |just )?"
    r"(?:fine|ok|okay|alright|good|great|perfect|normal|correct)(?! (?:details?|textures?|structures?|lines?))|"
    r"clean|pristine|un[- ]?degraded|not degraded|intact|flawless|unaffected|unspoiled|undamaged|"
    r"good quality|high quality|well[- ]?(?:exposed|lit)|properly (?:exposed|lit)|correctly exposed|"
    r"no (?:degradations?|problems?|issues?|defects?|flaws?)|nothing wrong|(?:has|with) no (?:visible )?damage"
)
#: Reconstruct-only words: they name the pseudo-degradation task but never contradict a degradation.
_CLEAN_WEAK = (
    r"reconstruct(?:ed|ion|ing)?|reproduc(?:e|ed|tion)|as (?:it )?is|unchanged|untouched|keep|preserve|"
    r"leave|faithful(?:ly)?|identity|pseudo[- ]?degrad(?:ation|ed)|re-?encode|autoencode"
)
#: Vague repair words: fine with a named degradation, an error without one.
_NEEDS_WORK = (
    r"degraded|damaged|corrupted|unclean|dirty|impaired|low quality|poor quality|bad quality|bad|ugly|broken|messed up|"
    r"fix(?:ed)?|repair(?:ed)?|enhanc(?:e|ed|ement)|improv(?:e|ed)|restor(?:e|ed|ation)|correct(?:ed|ion)?|clean (?:it|them|up)"
)

NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "six": 6, "eight": 8, "sixteen": 16, "sixteenfold": 16}
_FACTOR = (
    r"(?:x|×) ?(?P<a>\d+)(?![\d.])|(?P<b>\d+) ?(?:x|×)(?!\w)|(?P<c>\d+|two|three|four|six|eight|sixteen)[- ]?(?:times|fold)|"
    r"(?:by|scale|factor|scale factor|upscaling factor)(?: of)?(?: a factor of)? (?P<d>\d+|two|four|eight)\b|"
    r"(?P<e>quadruple|double|twice|octuple)"
)
INTENSIFIER = re.compile(r"\b(?:very|extremely|heavily|severely|badly|really|strongly|terribly|hugely|massively|seriously)\W+$")

_MODALITY_PATTERNS: list[tuple[str, frozenset[int] | str]] = [
    (r"visible(?:[- ]light)?|visual|vis(?= image)|rgb|optical|"
     r"colou?r(?:ed)?(?=[ -](?:image|photo|picture|camera|frame|one|input|view|shot|channel|sensor|band))",
     frozenset({_V})),
    (r"infra[- ]?red|ir|thermal|lwir|thermographic|thermogram|heat (?:image|map|camera)", frozenset({_I})),
    (r"the other(?: one| image| modality| picture)?|the rest", "other"),
    (r"both|images|pictures|photos|frames|inputs|everything|all of them|each", "both"),
]

NEGATOR = re.compile(r"\b(?:not|no|never|without|nor|neither|none|nothing|free (?:of|from)|need not|needs? no)\b")
COMMANDS = (
    "upscale", "up-scale", "upsample", "enlarge", "magnify", "super-resolve", "brighten", "lighten", "darken",
    "dehaze", "defog", "de-haze", "remove", "reduce", "increase", "boost", "enhance", "improve", "fix", "correct",
    "restore", "recover", "reconstruct", "sharpen", "deblur", "make", "please", "also", "raise", "lower",
    "clear", "eliminate", "get", "apply", "do", "perform", "bring", "tone", "cut", "lift", "stretch", "amplify",
)
CLAUSE_SPLIT = re.compile(r",|\b(?:and|but|while|whereas|though|although|however|plus|yet|then)\b")
SENTENCE_SPLIT = re.compile(r"[.;!?\n]+(?!\d)")


def word_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` matched as whole words (not inside a longer word or hyphenated term)."""
    return re.compile(rf"(?<![\w-])(?:{pattern})(?![\w])")


#: Phrases that set the detail control rather than name a degradation: crisp ones ask for detail
#: level 1, faithful ones for 0; a softener just before ("a bit crisper") asks for 0.75 / 0.25.
_OBJECTS = r"people|persons?|pedestrians?|targets?|objects?|cars?|vehicles?|animals?|edges?|outlines?|details?|it|them"
_DETAIL_CRISP = (
    rf"(?:make |let )?(?:the |all the )?(?:{_OBJECTS}) (?:pop|stand out)|crisp(?:er|ly)?|sharper|punch(?:y|ier)"
    r"|more (?:fine |of the )?details?|more detailed|(?:enhance|boost|bring out)(?: the)? (?:fine )?details?|stand out|pop out"
)
_DETAIL_FAITHFUL = (
    r"(?:keep (?:it|them|the (?:image|result|fusion|output|look|colou?rs?)) (?:looking )?)?natural(?:[- ]looking)?"
    r"|keep (?:it|them|the (?:image|result|fusion|output)) faithful|(?:faithful|true) to (?:the )?(?:sources?|inputs?|originals?|images?)"
    r"|realistic(?: look(?:ing)?)?"
    r"|(?:no|without|less) (?:extra )?sharpening|(?:do )?not over[- ]?sharpen(?:ed|ing)?|subtle"
)
_DETAIL_SOFTENER = r"(?:a (?:little )?bit|a little|a touch|slightly|somewhat) (?:more )?"
DETAIL_CRISP_RE = word_pattern(rf"(?:{_DETAIL_SOFTENER})?(?:{_DETAIL_CRISP})")
DETAIL_FAITHFUL_RE = word_pattern(rf"(?:{_DETAIL_SOFTENER})?(?:{_DETAIL_FAITHFUL})")
DETAIL_SOFTENER_RE = re.compile(rf"^{_DETAIL_SOFTENER}")

DEG_RE = [(word_pattern(p), m) for p, m in _DEGRADATIONS]
UNSUPPORTED_RE = word_pattern(_UNSUPPORTED)
CLEAN_STRONG_RE = word_pattern(_CLEAN_STRONG)
CLEAN_WEAK_RE = word_pattern(_CLEAN_WEAK)
NEEDS_WORK_RE = word_pattern(_NEEDS_WORK)
FACTOR_RE = word_pattern(_FACTOR)
MODALITY_RE = [(word_pattern(p), m) for p, m in _MODALITY_PATTERNS]
