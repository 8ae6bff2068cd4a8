"""Free-text requests -> per-modality task plans, by rules (the rules: docs/requests.md).

``parse("the visible image is too dark and the thermal one is blurry, upscale 4x")``
returns ``TaskPlan(visible="ll", infrared="sr4")``. A request the rules cannot serve raises one
:class:`InstructionError` naming what was not understood and listing the supported tasks.
The recognised words are in :mod:`lure.text.lexicon`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from lure.text.lexicon import (
    CLAUSE_SPLIT,
    CLEAN_STRONG_RE,
    CLEAN_WEAK_RE,
    COMMANDS,
    DEG_RE,
    DETAIL_CRISP_RE,
    DETAIL_FAITHFUL_RE,
    DETAIL_SOFTENER_RE,
    FACTOR_RE,
    IGNORE,
    INTENSIFIER,
    MODALITY_RE,
    NEEDS_WORK_RE,
    NEGATOR,
    NUMBER_WORDS,
    SENTENCE_SPLIT,
    SR,
    UNSUPPORTED_RE,
    word_pattern,
)
from lure.text.vocabulary import INFRARED, MODALITY_NAMES, MODALITY_TASKS, TASKS, VISIBLE, TaskPlan

_V, _I = VISIBLE, INFRARED

__all__ = ["InstructionError", "ParseReport", "analyse", "describe_supported", "detail_request", "parse"]

BOTH = frozenset({VISIBLE, INFRARED})


class InstructionError(ValueError):
    """A request the parser cannot serve; ``problems`` lists each part not understood."""

    def __init__(self, text: str, problems: list[str]) -> None:
        self.text = text
        self.problems = list(problems)
        super().__init__(
            f"cannot serve the request {text.strip()!r}: {'; '.join(problems)}. {describe_supported()}"
        )


@dataclass(frozen=True)
class ParseReport:
    """What the rules read: the plan, which modalities the text named, and the matched terms."""

    plan: TaskPlan
    mentioned: frozenset[int]
    terms: tuple[str, ...] = field(default=())


def describe_supported() -> str:
    """One line listing the supported tasks per modality and how to ask for them."""
    parts = []
    for modality, name in MODALITY_NAMES.items():
        tasks = ", ".join(f"{t} ({TASKS[t].label})" for t in MODALITY_TASKS[modality])
        parts.append(f"{name}: {tasks}")
    return (
        "Supported tasks — " + "; ".join(parts) + ". Describe each image, e.g. 'the visible image is "
        "too dark and the infrared one is blurry, upscale 4x'; an empty request means both are clean."
    )


# --------------------------------------------------------------------------- matching


@dataclass
class _Term:
    kind: str  # "deg", "unsupported", "clean", "weak", "needs", "factor"
    start: int
    end: int
    phrase: str
    tasks: dict[int, str] = field(default_factory=dict)
    factor: int | None = None
    negated: bool = False
    strong: bool = False  # an intensifier precedes a super-resolution term


@dataclass
class _Clause:
    text: str
    terms: list[_Term]
    mentions: list[tuple[int, frozenset[int] | str]]  # (position, modality set | "other" | "both")


def _normalise(text: str) -> str:
    text = text.lower().replace("’", "'").replace("‘", "'").replace("–", "-").replace("—", "-")
    text = re.sub(r"n't\b", " not", text)
    return re.sub(r"[ \t]+", " ", text)


def _find_terms(clause: str) -> list[_Term]:
    taken: list[tuple[int, int]] = []
    terms: list[_Term] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    def add(term: _Term) -> None:
        taken.append((term.start, term.end))
        terms.append(term)

    # order matters: longer/more specific families first
    for m in UNSUPPORTED_RE.finditer(clause):
        if m.group(0) in {"motion blur", "motion blurred", "out of focus", "lens flare", "colour cast", "color cast",
                          "colour shift", "color shift", "camera shake"}:
            add(_Term("unsupported", m.start(), m.end(), m.group(0)))
    for m in CLEAN_STRONG_RE.finditer(clause):
        if free(m.start(), m.end()):
            add(_Term("clean", m.start(), m.end(), m.group(0)))
    for m in FACTOR_RE.finditer(clause):
        if free(m.start(), m.end()):
            raw = next(g for g in m.groups() if g)
            value = {"quadruple": 4, "double": 2, "twice": 2, "octuple": 8}.get(raw) or NUMBER_WORDS.get(raw)
            add(_Term("factor", m.start(), m.end(), m.group(0), factor=value or int(raw)))
    for pattern, tasks in DEG_RE:
        for m in pattern.finditer(clause):
            if free(m.start(), m.end()):
                add(_Term("deg", m.start(), m.end(), m.group(0), tasks=dict(tasks)))
    for m in UNSUPPORTED_RE.finditer(clause):
        if free(m.start(), m.end()):
            add(_Term("unsupported", m.start(), m.end(), m.group(0)))
    for kind, pattern in (("needs", NEEDS_WORK_RE), ("weak", CLEAN_WEAK_RE)):
        for m in pattern.finditer(clause):
            if free(m.start(), m.end()):
                add(_Term(kind, m.start(), m.end(), m.group(0)))
    terms.sort(key=lambda t: t.start)
    for term in terms:
        before = clause[: term.start]
        window = " ".join(before.split()[-4:])
        neg = NEGATOR.search(window) is not None
        if re.match(r"[- ]?free\b", clause[term.end:]):
            neg = True
        term.negated = neg
        if term.kind == "deg" and INTENSIFIER.search(before[-24:] if len(before) > 24 else before):
            term.strong = True
    return terms


def _find_mentions(clause: str, taken: list[tuple[int, int]]) -> list[tuple[int, frozenset[int] | str]]:
    mentions: list[tuple[int, frozenset[int] | str]] = []
    for pattern, modality in MODALITY_RE:
        for m in pattern.finditer(clause):
            if all(m.end() <= s or m.start() >= e for s, e in taken):
                mentions.append((m.start(), modality))
                taken.append((m.start(), m.end()))
    mentions.sort(key=lambda x: x[0])
    return mentions


def _split(text: str) -> list[list[_Clause]]:
    sentences: list[list[_Clause]] = []
    for sentence in SENTENCE_SPLIT.split(text):
        clauses = []
        for part in CLAUSE_SPLIT.split(sentence):
            part = part.strip(" :-\"'()")
            if not part:
                continue
            terms = _find_terms(part)
            mentions = _find_mentions(part, [(t.start, t.end) for t in terms])
            clauses.append(_Clause(part, terms, mentions))
        if clauses:
            sentences.append(clauses)
    return sentences


def _starts_with_command(clause: str) -> bool:
    words = re.findall(r"[\w-]+", clause)
    return bool(words) and (words[0] in COMMANDS or (words[0] in {"also", "then", "please", "and"}
                                                       and len(words) > 1 and words[1] in COMMANDS))


# --------------------------------------------------------------------------- reading


@dataclass
class _State:
    tasks: dict[int, list[_Term]] = field(default_factory=lambda: {_V: [], _I: []})
    factors: dict[int, list[_Term]] = field(default_factory=lambda: {_V: [], _I: []})
    clean: dict[int, list[str]] = field(default_factory=lambda: {_V: [], _I: []})
    needs: dict[int, list[str]] = field(default_factory=lambda: {_V: [], _I: []})
    problems: list[str] = field(default_factory=list)
    mentioned: set[int] = field(default_factory=set)
    recognised: int = 0
    matched: list[str] = field(default_factory=list)


def _name(modality: int) -> str:
    return MODALITY_NAMES[modality]


def _resolve_mentions(clause: _Clause, last_named: int | None) -> list[tuple[int, frozenset[int]]]:
    explicit = [(p, m) for p, m in clause.mentions if isinstance(m, frozenset)]
    out: list[tuple[int, frozenset[int]]] = list(explicit)
    for p, m in clause.mentions:
        if m == "other":
            named = set().union(*(mm for _, mm in explicit)) if explicit else set()
            ref = next(iter(named)) if len(named) == 1 else last_named
            out.append((p, frozenset({1 - ref}) if ref is not None else BOTH))
        elif m == "both" and not explicit:
            out.append((p, BOTH))
    return sorted(out, key=lambda x: x[0])


def _attach(term: _Term, targets: frozenset[int], state: _State, explicit: bool) -> None:
    """Record ``term`` on the modalities ``targets``; ``explicit`` when a modality word placed it."""
    state.recognised += 1
    state.matched.append(f"{term.kind}:{term.phrase}" + ("(negated)" if term.negated else ""))
    for modality in sorted(targets):
        if term.kind == "deg":
            task = term.tasks.get(modality)
            if term.negated:
                if task is not None or explicit:
                    state.clean[modality].append(f"not {term.phrase}")
                continue
            if task is None:
                owner = ", ".join(f"{_name(m)} {t}" for m, t in term.tasks.items() if t != IGNORE)
                state.problems.append(
                    f"'{term.phrase}' is not a task of the {_name(modality)} image"
                    + (f" (it means {owner})" if owner else "")
                )
            elif task != IGNORE:
                state.tasks[modality].append(term)
        elif term.kind == "factor":
            if term.negated:
                continue
            if modality == _V:
                state.problems.append(f"'{term.phrase}': upscaling is an infrared task only")
            else:
                state.factors[modality].append(term)
        elif term.kind == "unsupported":
            if not term.negated:
                state.problems.append(f"'{term.phrase}' is not a degradation LURE was trained for")
        elif term.kind == "clean":
            (state.needs if term.negated else state.clean)[modality].append(term.phrase)
        elif term.kind == "needs":
            if term.negated:
                state.clean[modality].append(f"not {term.phrase}")
            else:
                state.needs[modality].append(term.phrase)
        # "weak" (reconstruct) terms only count as recognised content


def _compatible(term: _Term) -> frozenset[int] | None:
    """Modalities a term can belong to on its own (``None``: it fits either)."""
    if term.kind == "deg":
        owners = frozenset(m for m, t in term.tasks.items() if t != IGNORE)
        return owners or frozenset(term.tasks)
    if term.kind == "factor":
        return frozenset({_I})
    return None


def analyse(text: str) -> ParseReport:
    """Read ``text`` with the rules; raise :class:`InstructionError` for an unservable request."""
    if not isinstance(text, str):
        raise TypeError(f"instruction must be a string, got {type(text).__name__}")
    state = _State()
    last_named: int | None = None
    for sentence in _split(_normalise(text)):
        prev: list[frozenset[int]] | None = None
        prev_topic_only = False
        for clause in sentence:
            mentions = _resolve_mentions(clause, last_named)
            for _, mods in mentions:
                state.mentioned |= mods
                state.recognised += 1
                if len(mods) == 1:
                    last_named = next(iter(mods))
            if mentions:
                targets_here = [mods for _, mods in mentions]
            elif prev and (prev_topic_only or not _starts_with_command(clause.text)):
                targets_here = prev
            else:
                targets_here = []
            for term in clause.terms:
                if len(targets_here) == 1 or (targets_here and not mentions):
                    targets = frozenset().union(*targets_here)
                    _attach(term, targets, state, explicit=True)
                elif targets_here:  # several modality words in one clause: the nearest one
                    pos = min(mentions, key=lambda pm: (abs(pm[0] - term.start), pm[0] > term.start))
                    _attach(term, pos[1], state, explicit=True)
                else:
                    owners = _compatible(term)
                    if owners is None:  # clean / needs / unsupported: the image talked about last, else both
                        target = frozenset({last_named}) if last_named is not None else BOTH
                        _attach(term, target, state, explicit=False)
                    elif len(owners) == 1:
                        _attach(term, owners, state, explicit=False)
                        if term.kind == "deg" and not term.negated:
                            last_named = next(iter(owners))
                    else:
                        state.recognised += 1
                        if not term.negated:
                            state.problems.append(
                                f"'{term.phrase}' fits both images; say which one (visible or infrared)")
            prev_topic_only = bool(mentions) and not clause.terms
            prev = targets_here or prev
    return _decide(text, state)


def _decide(text: str, state: _State) -> ParseReport:
    plan: dict[int, str] = {}
    for modality in (_V, _I):
        terms = state.tasks[modality]
        tasks = {t.tasks[modality] for t in terms}
        if modality == _I and (SR in tasks or state.factors[_I]):
            tasks.discard(SR)
            factors = {f.factor for f in state.factors[_I]}
            bad = sorted(f for f in factors if f not in (4, 8))
            if bad:
                state.problems.append(f"upscaling factor x{bad[0]} is not supported (infrared: x4 or x8)")
            factors -= set(bad)
            if len(factors) > 1:
                state.problems.append("both x4 and x8 upscaling requested for the infrared image")
            elif factors:
                tasks.add(f"sr{factors.pop()}")
            elif not bad:
                strong = any(t.strong for t in terms if t.tasks[modality] == SR)
                tasks.add("sr8" if strong else "sr4")
        name = _name(modality)
        if len(tasks) > 1:
            state.problems.append(
                f"the {name} image gets several degradations ({', '.join(sorted(tasks))}); "
                "LURE handles one task per image")
        elif tasks and state.clean[modality] and any(not c.startswith("not ") for c in state.clean[modality]):
            strong = [c for c in state.clean[modality] if not c.startswith("not ")]
            state.problems.append(
                f"the {name} image is called '{strong[0]}' and degraded ({next(iter(tasks))}) at once")
        elif not tasks and state.needs[modality] and not any(
                not c.startswith("not ") for c in state.clean[modality]):
            state.problems.append(
                f"'{state.needs[modality][0]}' says the {name} image needs work but not what is wrong with it")
        plan[modality] = next(iter(tasks)) if tasks else "pd"
    if state.problems:
        raise InstructionError(text, list(dict.fromkeys(state.problems)))
    return ParseReport(TaskPlan(plan[_V], plan[_I]), frozenset(state.mentioned), tuple(state.matched))


def detail_request(text: str) -> tuple[float | None, str]:
    """The detail level a request asks for and the request without those phrases.

    "make the details pop", "crisper", "make the people stand out" ask for 1 (crisp); "keep it
    natural", "faithful", "no sharpening" for 0 (faithful); with "a bit"/"slightly" in front, 0.75
    and 0.25. ``None`` when the request says nothing about detail; a request asking for both
    raises :class:`InstructionError`."""
    normalised = _normalise(text)
    levels: set[float] = set()
    for pattern, level, mild in ((DETAIL_CRISP_RE, 1.0, 0.75), (DETAIL_FAITHFUL_RE, 0.0, 0.25)):
        for match in pattern.finditer(normalised):
            levels.add(mild if DETAIL_SOFTENER_RE.match(match.group(0)) else level)
        normalised = pattern.sub(" ", normalised)
    if len(levels) > 1:
        raise InstructionError(text, ["it asks for a natural and a crisp look at once; choose one (or use --detail)"])
    return (levels.pop() if levels else None), normalised


def parse(text: str, fallback: Callable[[str], TaskPlan] | None = None) -> TaskPlan:
    """The per-modality plan of a free-text request (see the module docstring for the rules),
    with the detail level of :func:`detail_request` when the request names one.

    ``fallback`` (optional, e.g. the text encoder's embedding classifier) is asked only when the
    rules find nothing they recognise in a non-empty request; without it such a request raises.
    """
    if not isinstance(text, str):
        raise TypeError(f"instruction must be a string, got {type(text).__name__}")
    if not text.strip():
        return TaskPlan()
    if not re.search(r"\w", text):
        raise InstructionError(text, ["no words in the request"])
    detail, rest = detail_request(text)
    if detail is not None:  # what is left names the degradations, or nothing
        report = analyse(rest)
        plan = report.plan if (report.terms or report.mentioned) else TaskPlan()
        return TaskPlan(plan.visible, plan.infrared, detail)
    report = analyse(text)
    if not report.terms and not report.mentioned and not _has_neutral(text):
        if fallback is not None:
            return fallback(text)
        raise InstructionError(text, ["no modality, degradation or clean statement was recognised"])
    return report.plan


_NEUTRAL_RE = word_pattern(r"fus(?:e|ion|ed)|combin(?:e|ed)|merg(?:e|ed)|nothing|as usual|default")


def _has_neutral(text: str) -> bool:
    return _NEUTRAL_RE.search(_normalise(text)) is not None
