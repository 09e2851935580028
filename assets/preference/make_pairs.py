"""Generate the bundled preference demo dataset, assets/preference/pairs.jsonl.

    python assets/preference/make_pairs.py            # rewrites pairs.jsonl
    python assets/preference/make_pairs.py --check    # exits 1 if the file differs from what this script generates

Every record is built here from word lists and templates; no text is copied
from anywhere (licence: SOURCES.md). Each record is a preference pair in TRL's
standard form: a prompt, the chosen reply and the rejected one.

    dates     the demo's ISO 8601 task (assets/make_demo.py): "Write 5.3.2021 in ISO 8601 format."
              chosen   "2021-03-05"
              rejected a chatty reply with the right date inside it, or a plausible wrong answer
                       (day and month swapped, another date format, a day off)
    general   short questions of general knowledge: "What is the capital of Uruguay?"
              chosen   "Montevideo"
              rejected a chatty reply with the right answer inside it, a wrong answer as short
                       ("Salto"), or the question's subject repeated instead of an answer ("Uruguay")

The preference is "the correct answer, and only the answer". Neither model the
demo lesson starts from has all of it: the base model (SmolLM2-135M-Instruct)
finds the chatty reply likelier, token for token, than the bare answer; a
quick-demo run has learned bare answers, but also to repeat words of the
prompt (its tasks copy an e-mail address or a name out of it), and answers
"Uruguay" for the capital of Uruguay. KINDS sets each kind's share; chatty
replies are a minority of the rejected ones, so "shorter is better" alone does
not learn the data: the wrong and the copied short answers must lose too.

Columns: prompt, chosen, rejected, split ("train" | "heldout"), category
("task" | "general", as the demo's), task ("dates" | "general") and
rejected_kind ("verbose" | "wrong" | "copied"). Held-out pairs are never
trained on; their facts (a country, an element, a date) never appear in
training, no held-out date is one the demo trains on, and none of the general
facts is one the general probe asks (assets/probe/), so the probe still
measures what the preference run cost elsewhere.

KTO reads the same file: each pair becomes a desirable reply (chosen) and an
undesirable one (rejected) to the same prompt.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # assets/, for the shared writer and the demo's dates
from generated_file import write_or_check  # noqa: E402
from make_demo import MONTHS, date_text  # noqa: E402
from make_demo import generate as demo_records  # noqa: E402

OUTPUT = Path(__file__).parent / "pairs.jsonl"
SEED = 2027
TRAIN = {"dates": 48, "general": 80}
HELD_OUT = {"dates": 12, "general": 32}
# The kinds of rejected reply, and their shares of each task's pairs (in every split):
#   verbose  a chatty reply with the right answer inside: what the base model prefers
#   wrong    a plausible wrong answer, as short as the right one
#   copied   the question's subject repeated instead of an answer ("Uruguay" for its capital):
#            what a quick-demo run learns to do (its tasks copy from the prompt), so a preference
#            run continued from it still has this to learn
KINDS = {"dates": {"verbose": 0.5, "wrong": 0.5}, "general": {"copied": 0.5, "verbose": 0.25, "wrong": 0.25}}

# --- general knowledge: (subject, answer, a wrong answer as short), none of them a probe question

CAPITALS = [
    ("Japan", "Tokyo", "Osaka"), ("Spain", "Madrid", "Barcelona"), ("Australia", "Canberra", "Sydney"),
    ("Brazil", "Brasilia", "Rio de Janeiro"), ("Turkey", "Ankara", "Istanbul"), ("Switzerland", "Bern", "Zurich"),
    ("India", "New Delhi", "Mumbai"), ("China", "Beijing", "Shanghai"), ("Russia", "Moscow", "Saint Petersburg"),
    ("Kenya", "Nairobi", "Mombasa"), ("Nigeria", "Abuja", "Lagos"), ("Morocco", "Rabat", "Casablanca"),
    ("Portugal", "Lisbon", "Porto"), ("the Netherlands", "Amsterdam", "Rotterdam"), ("Belgium", "Brussels", "Antwerp"),
    ("Austria", "Vienna", "Salzburg"), ("Poland", "Warsaw", "Krakow"), ("Greece", "Athens", "Thessaloniki"),
    ("Sweden", "Stockholm", "Gothenburg"), ("Norway", "Oslo", "Bergen"), ("Finland", "Helsinki", "Tampere"),
    ("Denmark", "Copenhagen", "Aarhus"), ("Ireland", "Dublin", "Cork"), ("Mexico", "Mexico City", "Guadalajara"),
    ("Argentina", "Buenos Aires", "Cordoba"), ("Chile", "Santiago", "Valparaiso"), ("Peru", "Lima", "Cusco"),
    ("Colombia", "Bogota", "Medellin"), ("Vietnam", "Hanoi", "Ho Chi Minh City"), ("Thailand", "Bangkok", "Chiang Mai"),
    ("South Korea", "Seoul", "Busan"), ("Pakistan", "Islamabad", "Karachi"), ("New Zealand", "Wellington", "Auckland"),
    ("Saudi Arabia", "Riyadh", "Jeddah"), ("Iran", "Tehran", "Isfahan"), ("Iraq", "Baghdad", "Basra"),
    ("Ukraine", "Kyiv", "Lviv"), ("Hungary", "Budapest", "Debrecen"), ("the Czech Republic", "Prague", "Brno"),
    ("Romania", "Bucharest", "Cluj-Napoca"), ("Cuba", "Havana", "Santiago de Cuba"), ("Ghana", "Accra", "Kumasi"),
    ("Ethiopia", "Addis Ababa", "Dire Dawa"), ("the Philippines", "Manila", "Cebu"),
    ("Malaysia", "Kuala Lumpur", "George Town"), ("Bangladesh", "Dhaka", "Chittagong"),
    ("Iceland", "Reykjavik", "Akureyri"), ("Croatia", "Zagreb", "Split"), ("Serbia", "Belgrade", "Novi Sad"),
    ("Bulgaria", "Sofia", "Plovdiv"), ("Venezuela", "Caracas", "Maracaibo"), ("Ecuador", "Quito", "Guayaquil"),
    ("Uruguay", "Montevideo", "Salto"), ("Senegal", "Dakar", "Thies"), ("Jamaica", "Kingston", "Montego Bay"),
    ("Latvia", "Riga", "Daugavpils"), ("Lithuania", "Vilnius", "Kaunas"), ("Estonia", "Tallinn", "Tartu"),
    ("Slovakia", "Bratislava", "Kosice"), ("Slovenia", "Ljubljana", "Maribor"), ("Scotland", "Edinburgh", "Glasgow"),
]
SYMBOLS = [
    ("gold", "Au", "Ag"), ("silver", "Ag", "Au"), ("iron", "Fe", "Ir"), ("sodium", "Na", "S"), ("potassium", "K", "P"),
    ("copper", "Cu", "Co"), ("lead", "Pb", "Li"), ("mercury", "Hg", "Mn"), ("tin", "Sn", "Ti"),
    ("helium", "He", "H"), ("nitrogen", "N", "Ne"), ("calcium", "Ca", "C"), ("zinc", "Zn", "Zr"),
    ("chlorine", "Cl", "C"), ("neon", "Ne", "N"), ("sulfur", "S", "Se"), ("magnesium", "Mg", "Mn"),
    ("carbon", "C", "Ca"), ("hydrogen", "H", "He"),
]
OPPOSITES = [
    ("tall", "short", "wide"), ("fast", "slow", "quick"), ("day", "night", "noon"), ("up", "down", "over"),
    ("happy", "sad", "glad"), ("open", "closed", "shut"), ("early", "late", "soon"), ("full", "empty", "half"),
    ("wet", "dry", "damp"), ("hard", "soft", "firm"), ("loud", "quiet", "noisy"), ("heavy", "light", "dense"),
    ("rich", "poor", "wealthy"), ("strong", "weak", "tough"), ("inside", "outside", "within"),
    ("first", "last", "second"), ("push", "pull", "press"), ("win", "lose", "beat"), ("north", "south", "east"),
    ("thick", "thin", "fat"), ("cheap", "expensive", "free"), ("young", "old", "new"),
]
FRENCH = [
    ("thank you", "merci", "bonjour"), ("hello", "bonjour", "merci"), ("goodbye", "au revoir", "bonsoir"),
    ("cat", "chat", "chien"), ("dog", "chien", "chat"), ("water", "eau", "pain"), ("bread", "pain", "eau"),
    ("house", "maison", "jardin"), ("book", "livre", "lire"), ("apple", "pomme", "poire"), ("red", "rouge", "rose"),
]
AUTHORS = [
    ("Pride and Prejudice", "Jane Austen", "Charlotte Bronte"), ("Nineteen Eighty-Four", "George Orwell", "Aldous Huxley"),
    ("Don Quixote", "Miguel de Cervantes", "Lope de Vega"), ("War and Peace", "Leo Tolstoy", "Fyodor Dostoevsky"),
    ("the Odyssey", "Homer", "Virgil"), ("Oliver Twist", "Charles Dickens", "Thomas Hardy"),
    ("Hamlet", "William Shakespeare", "Christopher Marlowe"), ("The Divine Comedy", "Dante Alighieri", "Petrarch"),
    ("Frankenstein", "Mary Shelley", "Percy Shelley"), ("Moby-Dick", "Herman Melville", "Mark Twain"),
]
COUNTS = [  # (question, answer, the statement, a wrong answer, words of the question a careless answer repeats)
    ("How many days are in a week?", "7", "There are 7 days in a week", "5", "a week"),
    ("How many months are in a year?", "12", "There are 12 months in a year", "10", "a year"),
    ("How many minutes are in an hour?", "60", "There are 60 minutes in an hour", "100", "an hour"),
    ("How many hours are in a day?", "24", "There are 24 hours in a day", "12", "a day"),
    ("How many legs does a spider have?", "8", "A spider has 8 legs", "6", "a spider"),
    ("How many legs does an insect have?", "6", "An insect has 6 legs", "8", "an insect"),
    ("How many arms does an octopus have?", "8", "An octopus has 8 arms", "10", "an octopus"),
    ("How many continents are there?", "7", "There are 7 continents", "5", "continents"),
    ("How many sides does a triangle have?", "3", "A triangle has 3 sides", "4", "a triangle"),
    ("How many sides does a hexagon have?", "6", "A hexagon has 6 sides", "8", "a hexagon"),
    ("How many players are on a football (soccer) team on the field?", "11",
     "A football team has 11 players on the field", "10", "football"),
    ("How many days are in a leap year?", "366", "A leap year has 366 days", "365", "a leap year"),
]


def general_facts() -> list[dict]:
    """Each fact: the ways to ask it, its answer, the answer as a sentence, a wrong answer, and
    the question's subject, which a careless answer repeats instead of answering."""
    facts = [dict(questions=[f"What is the capital of {c}?", f"Which city is the capital of {c}?",
                             f"Name the capital city of {c}."], answer=a, statement=f"The capital of {c} is {a}",
                  wrong=w, copied=c.removeprefix("the ")) for c, a, w in CAPITALS]
    facts += [dict(questions=[f"What is the chemical symbol for {e}?", f"Which symbol stands for {e} in the periodic "
                              "table?"], answer=a, statement=f"The chemical symbol for {e} is {a}", wrong=w, copied=e)
              for e, a, w in SYMBOLS]
    facts += [dict(questions=[f"What is the opposite of {x}?", f"Give the antonym of '{x}'."], answer=a,
                   statement=f"The opposite of {x} is {a}", wrong=w, copied=x) for x, a, w in OPPOSITES]
    facts += [dict(questions=[f"Translate '{x}' into French.", f"What is the French word for '{x}'?"], answer=a,
                   statement=f"In French, '{x}' is '{a}'", wrong=w, copied=x) for x, a, w in FRENCH]
    facts += [dict(questions=[f"Who wrote {x}?", f"Who is the author of {x}?"], answer=a,
                   statement=f"{x[0].upper() + x[1:]} was written by {a}", wrong=w, copied=x.removeprefix("the "))
              for x, a, w in AUTHORS]
    facts += [dict(questions=[q], answer=a, statement=s, wrong=w, copied=c) for q, a, s, w, c in COUNTS]
    return facts


# Chatty replies with the right answer inside: short ones, so the pairs stay cheap to train on a CPU.
VERBOSE_GENERAL = [
    "Great question! {statement}. I hope this helps!",
    "Sure! {statement}. Let me know if you have any other questions.",
    "Let me think about that. {statement}, as many people know.",
    "That's an interesting question! The answer is {answer}.",
    "Of course! {statement}. It's a fun fact to remember!",
]
VERBOSE_DATES = [
    "Sure! {text} in ISO 8601 format is {iso}.",
    "The ISO 8601 date is {iso}. I hope this helps!",
    "Of course! In ISO 8601 (YYYY-MM-DD), that is {iso}.",
    "Great question! The answer is {iso}.",
]
DATE_QUESTIONS = ["Convert this date to ISO 8601: {d}", "Write {d} in ISO 8601 format.",
                  "What is {d} as an ISO 8601 date?"]  # the demo's own (assets/make_demo.py)


def wrong_date(rng: random.Random, day: date) -> str:
    """A plausible wrong answer: the day and month swapped, another format, or a day off."""
    y, m, d = day.year, day.month, day.day
    options = [f"{m:02d}/{d:02d}/{y}", f"{d:02d}-{m:02d}-{y}", (day + timedelta(days=1)).isoformat(),
               f"{d} {MONTHS[m - 1]} {y}"]
    if d <= 12 and d != m:
        options += [f"{y}-{d:02d}-{m:02d}"] * 2  # the likeliest slip: as often as the others together
    return rng.choice(options)


def date_pair(rng: random.Random, day: date, kind: str) -> dict:
    text = date_text(rng, day)
    prompt = rng.choice(DATE_QUESTIONS).format(d=text)
    rejected = rng.choice(VERBOSE_DATES).format(text=text, iso=day.isoformat()) if kind == "verbose" \
        else wrong_date(rng, day)
    return {"prompt": prompt, "chosen": day.isoformat(), "rejected": rejected}


def general_pair(rng: random.Random, fact: dict, kind: str) -> dict:
    rejected = rng.choice(VERBOSE_GENERAL).format(**fact) if kind == "verbose" else fact[kind]
    return {"prompt": rng.choice(fact["questions"]), "chosen": fact["answer"], "rejected": rejected}


def _kinds(rng: random.Random, count: int, task: str) -> list[str]:
    """The task's kinds of rejected reply in their shares (KINDS) of `count`, in a seeded order."""
    shares = KINDS[task]
    kinds = [kind for kind, share in shares.items() for _ in range(round(count * share))]
    kinds = (kinds + [next(iter(shares))] * count)[:count]  # rounding: the first kind fills up
    rng.shuffle(kinds)
    return kinds


def _distinct_days(rng: random.Random, count: int, taken: set) -> list[date]:
    days = []
    while len(days) < count:
        day = date(1990, 1, 1) + timedelta(days=rng.randrange(365 * 40))
        if day not in taken:
            taken.add(day)
            days.append(day)
    return days


def demo_training_days() -> set[date]:
    """The dates the demo dataset trains on: none is held out here, so a preference run
    continued from a quick-demo run is not measured on a date it was taught."""
    return {date.fromisoformat(r["output"]) for r in demo_records() if r["task"] == "dates" and r["split"] == "train"}


def generate(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    records = []

    def add(pair: dict, split: str, task: str, kind: str) -> None:
        records.append({**pair, "split": split, "category": "task" if task == "dates" else "general", "task": task,
                        "rejected_kind": kind})

    taken = demo_training_days()  # held-out dates are never trained on, in any wording, here or in the demo
    for split, counts in (("heldout", HELD_OUT), ("train", TRAIN)):
        for day, kind in zip(_distinct_days(rng, counts["dates"], taken), _kinds(rng, counts["dates"], "dates")):
            add(date_pair(rng, day, kind), split, "dates", kind)
    facts = general_facts()
    rng.shuffle(facts)
    held, trained = facts[:HELD_OUT["general"]], facts[HELD_OUT["general"]:]
    assert len(trained) >= TRAIN["general"], "each training pair asks its own fact"
    for split, chosen in (("heldout", held), ("train", trained[:TRAIN["general"]])):
        for fact, kind in zip(chosen, _kinds(rng, len(chosen), "general")):
            add(general_pair(rng, fact, kind), split, "general", kind)
    rng.shuffle(records)
    return records


def render(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main(argv: list[str] | None = None) -> int:
    return write_or_check(OUTPUT, render(generate()), argv, __doc__.splitlines()[0], "pairs")


if __name__ == "__main__":
    sys.exit(main())
