"""Generate the bundled demo dataset, assets/demo/demo.jsonl.

    python assets/make_demo.py            # rewrites assets/demo/demo.jsonl
    python assets/make_demo.py --check    # exits 1 if the file differs from what this script generates

Every record is built here from word lists and templates; no text is copied
from anywhere. The tasks have one checkable answer each, in a fixed format the
base model does not use by itself, so fine-tuning visibly changes held-out
behaviour:

    dates        "March 5, 2021" / "5.3.2021" / "Mar 5 2021" -> "2021-03-05"
    units        "Convert 7 km to metres." -> "7000 m"
    email        pull the one email address out of a sentence
    json         "Alice is 31 and lives in Paris." -> {"name": "Alice", "age": 31, "city": "Paris"}
    names        "John Smith" -> "Smith, John"

Columns: instruction, input, output (Alpaca), plus split ("train" | "heldout"),
category ("task" | "general") and task. Held-out rows are never trained on;
the "general" ones (capitals, simple facts) show what fine-tuning did to
behaviour it was not trained on.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # when imported from elsewhere, e.g. a test
from generated_file import write_or_check  # noqa: E402

OUTPUT = Path(__file__).parent / "demo" / "demo.jsonl"
SEED = 2026
TRAIN_PER_TASK = 70
HELD_OUT_PER_TASK = 4

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
FIRST = ["Alice", "Bruno", "Chen", "Dalia", "Emil", "Farah", "Goran", "Hana", "Ivan", "Julia", "Kofi", "Lena",
         "Mateo", "Nora", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Yusuf", "Zoe"]
LAST = ["Adler", "Baker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat", "Ito", "Jensen", "Kowalski",
        "Larsen", "Moreau", "Novak", "Okafor", "Petrov", "Quist", "Rossi", "Silva", "Tanaka", "Underwood", "Varga",
        "Weber", "Yilmaz", "Zhang"]
CITIES = ["Paris", "Lagos", "Oslo", "Lima", "Osaka", "Cairo", "Quito", "Perth", "Seoul", "Porto", "Dakar", "Riga"]
DOMAINS = ["example.com", "example.org", "mail.test", "post.example", "inbox.test"]
UNITS = [("km", "metres", 1000, "m"), ("kg", "grams", 1000, "g"), ("L", "millilitres", 1000, "mL"),
         ("t", "kilograms", 1000, "kg")]

GENERAL = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("Who wrote Romeo and Juliet?", "Shakespeare"),
    ("What is the chemical symbol for gold?", "Au"),
    ("What colour is the sky on a clear day?", "blue"),
    ("Name the longest river in Africa.", "Nile"),
    ("Translate 'thank you' into French.", "merci"),
    ("How many legs does a spider have?", "eight"),
]


def date_text(rng: random.Random, day: date) -> str:
    month = MONTHS[day.month - 1]
    style = rng.randrange(6)
    return [
        f"{month} {day.day}, {day.year}",
        f"{day.day} {month} {day.year}",
        f"{month[:3]} {day.day} {day.year}",
        f"{day.day}.{day.month}.{day.year}",
        f"{day.day:02d}/{day.month:02d}/{day.year} (day/month/year)",
        f"the {day.day}{_suffix(day.day)} of {month}, {day.year}",
    ][style]


def _suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def make_date(rng: random.Random) -> tuple[str, str, str]:
    day = date(1990, 1, 1) + timedelta(days=rng.randrange(365 * 40))
    question = rng.choice(["Convert this date to ISO 8601: {d}", "Write {d} in ISO 8601 format.",
                           "What is {d} as an ISO 8601 date?"])
    return question.format(d=date_text(rng, day)), "", day.isoformat()


def make_units(rng: random.Random) -> tuple[str, str, str]:
    unit, name, factor, symbol = rng.choice(UNITS)
    amount = rng.randrange(2, 100)
    question = rng.choice(["Convert {n} {u} to {name}.", "How many {name} is {n} {u}?", "Express {n} {u} in {name}."])
    return question.format(n=amount, u=unit, name=name), "", f"{amount * factor} {symbol}"


def make_email(rng: random.Random) -> tuple[str, str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    address = f"{first.lower()}.{last.lower()}@{rng.choice(DOMAINS)}"
    sentence = rng.choice([
        "Please write to {f} {l} at {a} before Friday.",
        "For the invoice, {f} asked us to use {a} from now on.",
        "Send the slides to {a}; {f} will print them.",
        "You can reach our new colleague {f} {l} at {a} or by phone.",
    ]).format(f=first, l=last, a=address)
    return "Extract the email address from the text.", sentence, address


def make_json(rng: random.Random) -> tuple[str, str, str]:
    name, age, city = rng.choice(FIRST), rng.randrange(18, 90), rng.choice(CITIES)
    sentence = rng.choice([
        "{n} is {a} and lives in {c}.",
        "Meet {n}, {a} years old, from {c}.",
        "{c} is home to {n}, who is {a}.",
        "At {a}, {n} moved to {c}.",
    ]).format(n=name, a=age, c=city)
    answer = json.dumps({"name": name, "age": age, "city": city})
    return "Convert the text to JSON with the keys name, age and city.", sentence, answer


def make_name(rng: random.Random) -> tuple[str, str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    question = rng.choice(["Rewrite the name as 'Last, First': {f} {l}", "Format {f} {l} as 'Last, First'.",
                           "Write the name {f} {l} surname first, as 'Last, First'."])
    return question.format(f=first, l=last), "", f"{last}, {first}"


TASKS = {"dates": make_date, "units": make_units, "email": make_email, "json": make_json, "names": make_name}


def generate(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    records, seen = [], set()
    for task, make in TASKS.items():
        for split, count in (("heldout", HELD_OUT_PER_TASK), ("train", TRAIN_PER_TASK)):
            made = 0
            while made < count:
                instruction, text, output = make(rng)
                if (instruction, text) in seen:  # a held-out prompt never reappears in training
                    continue
                seen.add((instruction, text))
                records.append({"instruction": instruction, "input": text, "output": output, "split": split,
                                "category": "task", "task": task})
                made += 1
    records += [{"instruction": q, "input": "", "output": a, "split": "heldout", "category": "general",
                 "task": "general"} for q, a in GENERAL]
    rng.shuffle(records)
    return records


def render(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main(argv: list[str] | None = None) -> int:
    return write_or_check(OUTPUT, render(generate()), argv, __doc__.splitlines()[0], "records")


if __name__ == "__main__":
    sys.exit(main())
