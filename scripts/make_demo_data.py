"""Generate the synthetic demo data sets that tuneserve ships for its default models.

Running ``python scripts/make_demo_data.py`` (re)writes, byte-identically on every run:

- ``core/pipeline/demo_data/sentiment/{train,validation}.tsv``: header ``text<TAB>label``, labels
  ``negative`` / ``positive``, short English reviews of movies, products, restaurants and services.
- ``core/pipeline/demo_data/ner/{train,validation}.conll``: ``TOKEN TAG`` lines in IOB2 over PER, ORG, LOC
  and MISC, a blank line between sentences, tokenised like CoNLL (punctuation and ``'s`` split off).

All of the text is synthetic: it is composed from hand-written templates and word lists in this file
with a fixed random seed, using only the standard library and no network. Nothing is copied from or
derived from SST-2, CoNLL-2003 or any other corpus. People and companies are invented combinations;
places, nationalities, languages, events and a few well-known public institutions and sports clubs are
real names used only as entity fillers, so every statement in the NER sentences is fictional.

The sets are deliberately small (900 reviews and 700 sentences, a third of each for validation) so
that ``tuneserve demo`` fine-tunes all-MiniLM-L6-v2 on them in about two minutes of CPU time; they are
for demos and smoke tests, not for measuring model quality.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

SENTIMENT_SEED = 20_240_611
NER_SEED = 31_415_926

SENTIMENT_TRAIN_PER_LABEL = 300
SENTIMENT_VALIDATION_PER_LABEL = 150
NER_TRAIN_SENTENCES = 450
NER_VALIDATION_SENTENCES = 250

MIN_REVIEW_WORDS, MAX_REVIEW_WORDS = 4, 35
MIN_SENTENCE_TOKENS, MAX_SENTENCE_TOKENS = 5, 30

OUT_DIR = Path(__file__).resolve().parent.parent / "core" / "pipeline" / "demo_data"

# ---------------------------------------------------------------------------------------------------
# Sentiment
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Aspect:
    noun: str
    plural: bool
    pos: tuple[str, ...]
    neg: tuple[str, ...]


@dataclass(frozen=True)
class Domain:
    name: str
    items: tuple[tuple[str, str], ...]  # (singular, plural)
    tense: str  # "past" or "present": the usual tense of an aspect clause
    seen: tuple[str, ...]  # "the best X I have ever ___"
    again: tuple[str, ...]  # "I will ___" / "I will never ___"
    aspects: tuple[Aspect, ...]
    context: tuple[str, ...]  # neutral sentences; {item} is filled in
    pos_lines: tuple[str, ...]  # domain-specific positive statements
    neg_lines: tuple[str, ...]  # domain-specific negative statements


def _a(noun: str, pos: str, neg: str, plural: bool = False) -> Aspect:
    return Aspect(noun, plural, tuple(pos.split("|")), tuple(neg.split("|")))


# Word lists and templates: kept compact by hand, one line per group rather than per item.
# fmt: off
MOVIE = Domain(
    name="movie",
    items=(
        ("movie", "movies"), ("film", "films"), ("sequel", "sequels"), ("thriller", "thrillers"),
        ("comedy", "comedies"), ("documentary", "documentaries"), ("drama", "dramas"),
        ("horror movie", "horror movies"), ("animated film", "animated films"),
        ("romantic comedy", "romantic comedies"), ("series", "series"), ("show", "shows"),
        ("miniseries", "miniseries"), ("western", "westerns"), ("remake", "remakes"),
        ("musical", "musicals"), ("war film", "war films"), ("crime drama", "crime dramas"),
        ("sci-fi movie", "sci-fi movies"), ("biopic", "biopics"),
    ),
    tense="past",
    seen=("seen", "watched", "sat through"),
    again=("watch it again", "see it again", "watch anything by this director again"),
    aspects=(
        _a("plot", "gripping|clever|original|tight|engaging|surprising|inventive",
           "thin|predictable|confusing|silly|paper-thin|convoluted|muddled|nonsensical"),
        _a("acting", "superb|convincing|great|wonderful|natural|top-notch|excellent",
           "wooden|flat|stiff|over the top|unconvincing|terrible|hammy"),
        _a("script", "sharp|witty|smart|well written|intelligent",
           "clumsy|lazy|cringeworthy|lifeless|clunky|a mess"),
        _a("soundtrack", "beautiful|haunting|perfect|memorable|gorgeous",
           "forgettable|grating|intrusive|annoying|generic"),
        _a("pacing", "brisk|perfect|well judged|steady|relentless",
           "sluggish|glacial|uneven|painfully slow|all over the place"),
        _a("ending", "satisfying|moving|perfect|unexpected|powerful|beautiful",
           "rushed|baffling|abrupt|unsatisfying|lazy|a cop-out"),
        _a("dialogue", "sharp|funny|natural|crisp|clever", "stilted|clumsy|corny|awkward|wooden"),
        _a("cast", "excellent|brilliant|charming|fantastic|perfect", "miscast|bland|lifeless|forgettable"),
        _a("special effects", "stunning|seamless|impressive|spectacular",
           "cheap|cheesy|dated|distracting|laughable", plural=True),
        _a("characters", "memorable|likeable|believable|well drawn|rich",
           "flat|annoying|one-dimensional|unlikeable|hollow", plural=True),
        _a("cinematography", "gorgeous|breathtaking|stunning|lush|beautiful", "murky|dull|ugly|shaky"),
        _a("jokes", "hilarious|clever|laugh-out-loud funny|sharp", "stale|lame|painfully unfunny|tired",
           plural=True),
        _a("villain", "menacing|terrific|memorable|chilling", "cartoonish|dull|laughable|toothless"),
        _a("second half", "thrilling|much stronger|riveting|superb", "a slog|tedious|dragging|a mess"),
        _a("lead actress", "magnetic|brilliant|luminous|fantastic", "wooden|miscast|flat|bland"),
        _a("costumes", "gorgeous|stunning|lovely|detailed", "cheap|tacky|ridiculous", plural=True),
        _a("final episode", "perfect|moving|brilliant|satisfying", "rushed|baffling|lazy|a letdown"),
    ),
    context=(
        "I watched this {item} last night", "We saw it at the cinema on Friday",
        "My friends dragged me along to this {item}", "I streamed it on a long flight",
        "Saw the premiere with my sister", "We watched the whole {item} in one weekend",
        "I went in knowing nothing about it", "I had read the book first",
        "Went to a late showing with my partner", "Finally got around to watching this {item}",
        "We rented it for a family movie night", "I had been waiting months for this {item}",
    ),
    pos_lines=(
        "I laughed from beginning to end", "it kept me on the edge of my seat",
        "I could not look away", "I cried at the end, in a good way", "not a single dull moment",
        "the two hours flew by", "I want to watch it again right now", "the whole cinema applauded",
        "it stayed with me for days", "the best thing on television this year", "my kids adored it",
        "every scene is beautifully shot", "a masterpiece", "instantly one of my favorites",
    ),
    neg_lines=(
        "I walked out halfway through", "I fell asleep twice", "I checked my watch every ten minutes",
        "two hours of my life I will never get back", "the trailer was better than the film",
        "nothing happens for the first hour", "the audience was laughing at it, not with it",
        "I gave up after three episodes", "my kids were bored stiff", "a total snooze",
        "it made no sense at all", "I honestly wanted a refund for the ticket",
    ),
)

_PRICE = _a("price", "fair|reasonable|a bargain|a steal|very fair",
            "outrageous|far too high|a rip-off|absurd")
_DELIVERY = _a("delivery", "fast|quick|prompt|early", "slow|late|a disaster|painfully slow")
_SUPPORT = _a("customer support", "helpful|responsive|friendly|excellent",
              "useless|unhelpful|rude|unreachable")
_BUILD = _a("build quality", "solid|excellent|premium|superb|sturdy", "flimsy|cheap|shoddy|poor|appalling")
_DESIGN = _a("design", "sleek|elegant|clever|beautiful|thoughtful", "ugly|clunky|awkward|cheap-looking")
_INSTRUCTIONS = _a("instructions", "clear|simple|helpful|easy to follow",
                   "useless|confusing|vague|incomprehensible", plural=True)
_PRODUCT_POS = (
    "it works exactly as described", "it arrived a day early", "it was easy to set up",
    "my whole family uses it now", "it does everything I need", "it feels much more expensive than it is",
    "I bought a second one as a gift", "best purchase I made all year", "no complaints whatsoever",
)
_PRODUCT_NEG = (
    "it arrived damaged", "the box was missing half the parts", "I returned it the next day",
    "it looks nothing like the pictures", "the refund took six weeks", "it broke after two days",
    "it fell apart within a week", "it stopped working after a month",
)
_PRODUCT_CONTEXT = (
    "I bought this {item} two months ago", "Ordered it online for my dad",
    "Got this {item} as a birthday gift",
    "Picked it up on sale last week", "This replaced my old {item}",
    "Bought it after reading a lot of reviews",
    "My wife chose this one", "It arrived on Tuesday", "We have had it for about six weeks",
)

GADGET = Domain(
    name="gadget",
    items=(
        ("phone", "phones"), ("laptop", "laptops"), ("pair of headphones", "headphones"),
        ("keyboard", "keyboards"), ("monitor", "monitors"), ("printer", "printers"), ("camera", "cameras"),
        ("smartwatch", "smartwatches"), ("speaker", "speakers"), ("charger", "chargers"),
        ("tablet", "tablets"),
        ("e-reader", "e-readers"), ("router", "routers"), ("mouse", "mice"), ("gaming console", "consoles"),
    ),
    tense="present",
    seen=("owned", "bought", "used", "paid for"),
    again=("buy it again", "buy another one", "order from this brand again"),
    aspects=(
        _a("battery life", "great|excellent|amazing|outstanding|superb",
           "awful|terrible|disappointing|pathetic|dreadful"),
        _BUILD, _PRICE, _DELIVERY, _SUPPORT, _DESIGN, _INSTRUCTIONS,
        _a("screen", "bright|sharp|gorgeous|crisp|vivid", "dim|grainy|washed out|dull|fragile"),
        _a("sound", "rich|clear|powerful|crisp|balanced", "tinny|muddy|harsh|weak|distorted"),
        _a("setup", "easy|painless|quick|simple", "a nightmare|frustrating|complicated|endless"),
        _a("buttons", "responsive|solid|satisfying|well placed", "sticky|mushy|wobbly|stiff", plural=True),
        _a("app", "intuitive|clean|reliable|handy", "buggy|clunky|useless|slow"),
        _a("camera", "excellent|sharp|superb|impressive", "blurry|mediocre|grainy|disappointing"),
        _a("software", "smooth|fast|polished|stable", "buggy|bloated|laggy|unstable"),
        _a("connection", "stable|fast|rock solid|reliable", "patchy|unstable|flaky|slow"),
    ),
    context=(*_PRODUCT_CONTEXT, "I use it mostly for work", "I needed a new {item} for a trip",
             "I have been using it every day for a year"),
    pos_lines=(*_PRODUCT_POS, "it still works perfectly after a year of daily use",
               "the battery lasts for days",
               "it looks great on my desk", "it connected on the first try"),
    neg_lines=(*_PRODUCT_NEG, "it overheats constantly", "it stopped charging after three weeks",
               "it crashes every few hours", "it keeps dropping the connection"),
)

HOME = Domain(
    name="home",
    items=(
        ("blender", "blenders"), ("kettle", "kettles"), ("vacuum cleaner", "vacuum cleaners"),
        ("coffee maker", "coffee makers"), ("toaster", "toasters"), ("air fryer", "air fryers"),
        ("rice cooker", "rice cookers"), ("microwave", "microwaves"), ("fan", "fans"),
        ("washing machine", "washing machines"), ("drill", "drills"), ("stand mixer", "stand mixers"),
        ("dishwasher", "dishwashers"), ("food processor", "food processors"), ("hair dryer", "hair dryers"),
    ),
    tense="present",
    seen=("owned", "bought", "used", "had in my kitchen"),
    again=("buy it again", "buy another one", "order from this brand again"),
    aspects=(
        _BUILD, _PRICE, _DELIVERY, _SUPPORT, _DESIGN, _INSTRUCTIONS,
        _a("motor", "powerful|quiet|strong|smooth", "noisy|weak|loud|unreliable"),
        _a("assembly", "easy|quick|painless|simple", "a nightmare|frustrating|endless|impossible"),
        _a("finish", "flawless|lovely|smooth|beautiful", "scratched|chipped|cheap|peeling"),
        _a("cord", "long|sturdy|thick|handy", "short|flimsy|stiff|frayed"),
        _a("controls", "simple|intuitive|clear|easy", "confusing|fiddly|stiff|baffling", plural=True),
    ),
    context=(*_PRODUCT_CONTEXT, "We moved into a new flat and needed a {item}", "I use it every morning"),
    pos_lines=(*_PRODUCT_POS, "it paid for itself in a month", "it is quieter than our old one",
               "it still works like new after a year", "it looks lovely in the kitchen"),
    neg_lines=(*_PRODUCT_NEG, "it makes a horrible grinding noise", "it started leaking after a week",
               "it smells of burning plastic", "the handle snapped off"),
)

GEAR = Domain(
    name="gear",
    items=(
        ("backpack", "backpacks"), ("jacket", "jackets"), ("pair of boots", "boots"),
        ("suitcase", "suitcases"),
        ("tent", "tents"), ("raincoat", "raincoats"), ("pair of running shoes", "running shoes"),
        ("sleeping bag", "sleeping bags"), ("hoodie", "hoodies"), ("pair of jeans", "jeans"),
        ("gym bag", "gym bags"), ("winter coat", "winter coats"),
    ),
    tense="present",
    seen=("owned", "bought", "worn", "paid for"),
    again=("buy it again", "buy another one", "order from this brand again"),
    aspects=(
        _PRICE, _DELIVERY, _SUPPORT, _DESIGN,
        _a("material", "soft|durable|high quality|sturdy|breathable", "thin|scratchy|cheap|flimsy"),
        _a("fit", "perfect|comfortable|spot on|true to size", "awful|uncomfortable|tight|way off"),
        _a("zipper", "sturdy|smooth|strong", "flimsy|stiff|fiddly|cheap"),
        _a("stitching", "neat|solid|strong|flawless", "sloppy|loose|uneven|coming apart"),
        _a("colour", "gorgeous|rich|lovely|vibrant", "dull|faded|drab|nothing like the photo"),
        _a("pockets", "handy|deep|clever|useful", "tiny|useless|awkward|shallow", plural=True),
        _a("straps", "comfortable|padded|sturdy|adjustable", "flimsy|scratchy|thin|uncomfortable",
           plural=True),
    ),
    context=(*_PRODUCT_CONTEXT, "I wore it on a hiking trip", "Took it on a two-week holiday",
             "I ordered my usual size"),
    pos_lines=(*_PRODUCT_POS, "it kept me dry in a storm", "it still looks new after a year",
               "I get compliments every time I wear it", "it survived three long trips"),
    neg_lines=(*_PRODUCT_NEG, "the seams came apart on the first trip", "the colour ran in the first wash",
               "it leaked in light rain", "the sole came off after a month"),
)

RESTAURANT = Domain(
    name="restaurant",
    items=(
        ("restaurant", "restaurants"), ("place", "places"), ("cafe", "cafes"), ("bistro", "bistros"),
        ("pizzeria", "pizzerias"), ("diner", "diners"), ("bakery", "bakeries"), ("sushi bar", "sushi bars"),
        ("steakhouse", "steakhouses"), ("food truck", "food trucks"), ("brunch spot", "brunch spots"),
        ("noodle bar", "noodle bars"), ("pub", "pubs"), ("tapas bar", "tapas bars"),
        ("burger joint", "burger joints"), ("taqueria", "taquerias"), ("curry house", "curry houses"),
        ("wine bar", "wine bars"), ("ramen shop", "ramen shops"), ("seafood shack", "seafood shacks"),
    ),
    tense="past",
    seen=("eaten at", "been to", "visited"),
    again=("go back", "eat here again", "come back", "bring my friends here again"),
    aspects=(
        _a("food", "delicious|tasty|fresh|amazing|excellent|superb|flavorful",
           "bland|greasy|cold|tasteless|mediocre|awful|inedible"),
        _a("pasta", "perfectly cooked|delicious|fresh|rich|wonderful", "overcooked|soggy|bland|gluey|salty"),
        _a("steak", "perfectly cooked|tender|juicy|superb", "tough|overcooked|chewy|dry|gristly"),
        _a("pizza", "crispy|delicious|fantastic|amazing", "soggy|burnt|greasy|bland"),
        _a("soup", "hearty|delicious|rich|comforting", "lukewarm|watery|salty|bland"),
        _a("fries", "crispy|perfect|golden|addictive", "soggy|limp|cold|stale", plural=True),
        _a("coffee", "excellent|strong|smooth|perfect", "bitter|weak|burnt|lukewarm"),
        _a("dessert", "heavenly|divine|delicious|wonderful", "dry|stale|too sweet|disappointing"),
        _a("portions", "generous|huge|perfect|very generous", "tiny|stingy|small|laughable", plural=True),
        _a("staff", "friendly|attentive|welcoming|lovely|warm", "rude|slow|careless|dismissive|inattentive",
           plural=True),
        _a("waiter", "charming|attentive|friendly|helpful", "rude|clueless|slow|grumpy"),
        _a("service", "fast|friendly|impeccable|attentive|excellent", "slow|rude|sloppy|chaotic|terrible"),
        _a("atmosphere", "cozy|relaxed|lovely|charming|buzzing", "noisy|cramped|dreary|sterile|awkward"),
        _a("prices", "fair|reasonable|very fair|honest", "ridiculous|steep|outrageous|absurd",
           plural=True),
        _a("bread", "warm|fresh|delicious|crusty", "stale|dry|hard|old"),
        _a("curry", "fragrant|rich|delicious|perfectly spiced", "bland|watery|greasy|salty"),
        _a("sushi", "fresh|superb|delicate|excellent", "warm|mushy|fishy|sloppy"),
        _a("cocktails", "creative|excellent|delicious|strong", "watery|overpriced|sickly sweet|weak",
           plural=True),
        _a("tacos", "fantastic|juicy|authentic|delicious", "soggy|dry|bland|cold", plural=True),
    ),
    context=(
        "We went for my mom's birthday", "Stopped by for lunch on a Tuesday", "Came here with a group of six",
        "We ordered the set menu", "Booked a table for two on Saturday night", "I grabbed takeout after work",
        "We had brunch here on Sunday", "Our friends recommended this {item}", "It was our first visit",
        "We walked in without a reservation", "I came here for a work lunch", "We ordered delivery",
    ),
    pos_lines=(
        "every dish was a hit", "we were seated right away", "the chef came out to say hello",
        "they made my kid feel very welcome", "everything tasted homemade", "I am still dreaming about it",
        "they remembered our names", "the best meal we had all year", "a hidden gem",
        "the dessert alone is worth the trip", "we left full and happy",
    ),
    neg_lines=(
        "we waited an hour for our food", "my order was wrong twice", "I got sick the next day",
        "they forgot our drinks completely", "the table was sticky", "we left hungry",
        "the bill had three extra items on it", "nobody came to take our order for twenty minutes",
        "there was a hair in my salad", "the manager did not even apologize",
        "they charged us for bread we never got",
    ),
)

_STAFF = _a("staff", "friendly|helpful|professional|courteous|kind", "rude|unhelpful|incompetent|dismissive",
            plural=True)
_CUSTOMER_SERVICE = _a("customer service", "excellent|outstanding|friendly|superb",
                       "appalling|useless|terrible|awful")
_PRICING = _a("pricing", "fair|transparent|honest|reasonable", "sneaky|confusing|outrageous|dishonest")
_BOOKING = _a("booking process", "simple|quick|painless|easy", "confusing|broken|frustrating|a mess")
_REFUND = _a("refund process", "quick|painless|fair|smooth", "endless|a nightmare|insulting|a joke")

HOTEL = Domain(
    name="hotel",
    items=(
        ("hotel", "hotels"), ("hostel", "hostels"), ("guesthouse", "guesthouses"), ("resort", "resorts"),
        ("holiday flat", "holiday flats"), ("inn", "inns"), ("motel", "motels"), ("spa hotel", "spa hotels"),
    ),
    tense="past",
    seen=("stayed at", "stayed in", "booked"),
    again=("stay here again", "book it again", "come back", "go back"),
    aspects=(
        _STAFF, _CUSTOMER_SERVICE, _BOOKING, _PRICING,
        _a("room", "spotless|spacious|quiet|comfortable|lovely", "filthy|tiny|noisy|musty|shabby"),
        _a("check-in", "quick|smooth|easy|effortless", "chaotic|slow|a nightmare|endless"),
        _a("bed", "comfortable|huge|comfy|heavenly", "lumpy|hard|uncomfortable|saggy"),
        _a("breakfast", "delicious|generous|excellent|varied", "sad|cold|meager|disappointing"),
        _a("wifi", "fast|reliable|stable|solid", "useless|patchy|painfully slow|nonexistent"),
        _a("location", "perfect|convenient|ideal|unbeatable", "awful|inconvenient|sketchy|remote"),
        _a("view", "stunning|gorgeous|breathtaking|lovely", "depressing|ugly|nonexistent|grim"),
        _a("pool", "gorgeous|clean|huge|lovely", "dirty|tiny|freezing|overcrowded"),
        _a("bathroom", "spotless|modern|spacious|clean", "mouldy|filthy|cramped|dated"),
    ),
    context=(
        "Stayed three nights in March", "We booked this {item} for our anniversary",
        "I was here for a conference",
        "We arrived late on a Friday", "Booked it through their website", "Our family of four stayed a week",
        "It was a last-minute booking",
    ),
    pos_lines=(
        "the room was upgraded for free", "they treated us like family",
        "we felt looked after the whole time",
        "they kept our bags after check-out", "we slept like babies", "the receptionist gave us great tips",
    ),
    neg_lines=(
        "they lost our booking", "the room smelled of smoke", "nobody at the desk knew anything",
        "there was construction noise all night", "the shower was cold every morning",
        "they charged us for a minibar we never touched",
    ),
)

TRAVEL = Domain(
    name="travel",
    items=(
        ("airline", "airlines"), ("taxi service", "taxi services"),
        ("car rental company", "car rental companies"),
        ("ferry company", "ferry companies"), ("bus company", "bus companies"),
        ("travel agency", "travel agencies"),
        ("train operator", "train operators"), ("tour company", "tour companies"),
    ),
    tense="past",
    seen=("flown with", "travelled with", "used", "booked with"),
    again=("fly with them again", "book with them again", "use them again", "travel with them again"),
    aspects=(
        _STAFF, _CUSTOMER_SERVICE, _BOOKING, _REFUND, _PRICING,
        _a("crew", "friendly|attentive|cheerful|professional", "rude|grumpy|indifferent|unhelpful"),
        _a("seats", "roomy|comfortable|spacious", "cramped|filthy|worn out|tiny", plural=True),
        _a("driver", "friendly|careful|punctual|polite", "reckless|rude|late|lost"),
        _a("boarding", "smooth|quick|organised|easy", "chaotic|slow|a shambles|stressful"),
        _a("guide", "knowledgeable|funny|patient|wonderful", "bored|rude|clueless|rushed"),
        _a("car", "clean|new|comfortable|spotless", "dirty|old|dented|smelly"),
        _a("food on board", "tasty|fresh|decent|generous", "inedible|cold|sad|overpriced"),
    ),
    context=(
        "Our flight was early in the morning", "Booked through their app", "We travelled with two small kids",
        "I took the night bus", "We rented a car for a week", "It was a six-hour trip",
        "We booked a day tour with them",
    ),
    pos_lines=(
        "the flight landed early", "everything was on time", "they rebooked us within minutes",
        "the whole trip was painless", "they waited for us when our train was late",
    ),
    neg_lines=(
        "the flight was delayed six hours with no explanation", "they lost my suitcase",
        "they charged me twice",
        "the driver never showed up", "we missed our connection because of them",
        "I was on hold for two hours",
    ),
)

PROVIDER = Domain(
    name="provider",
    items=(
        ("bank", "banks"), ("internet provider", "internet providers"), ("phone company", "phone companies"),
        ("insurance company", "insurance companies"), ("moving company", "moving companies"),
        ("cleaning service", "cleaning services"), ("garage", "garages"), ("repair shop", "repair shops"),
        ("hair salon", "hair salons"), ("dentist", "dentists"), ("gym", "gyms"),
        ("vet clinic", "vet clinics"),
        ("plumber", "plumbers"), ("language school", "language schools"),
        ("delivery service", "delivery services"),
    ),
    tense="past",
    seen=("dealt with", "used", "tried", "been a customer of"),
    again=("use them again", "go back", "trust them again", "recommend them again"),
    aspects=(
        _STAFF, _CUSTOMER_SERVICE, _BOOKING, _REFUND, _PRICING,
        _a("technician", "knowledgeable|polite|thorough|efficient", "careless|late|clueless|rude"),
        _a("wait time", "short|reasonable|minimal", "ridiculous|endless|absurd|unacceptable"),
        _a("communication", "clear|prompt|excellent|honest", "nonexistent|poor|confusing|terrible"),
        _a("repair", "quick|thorough|cheap|excellent", "botched|slow|sloppy|overpriced"),
        _a("appointment system", "simple|flexible|easy|quick", "chaotic|confusing|broken|rigid"),
        _a("contract", "clear|fair|simple|flexible", "confusing|unfair|sneaky|rigid"),
        _a("website", "clear|fast|simple|helpful", "broken|confusing|slow|useless"),
    ),
    context=(
        "I called them about a billing issue", "We used them for our move", "Had my car in for a repair",
        "I have been a customer for five years", "I signed up in January", "We needed a plumber urgently",
        "I went in for a routine checkup", "This was my second time with this {item}",
        "We booked them for an office cleaning",
    ),
    pos_lines=(
        "they fixed the problem on the first visit", "they went above and beyond",
        "they solved my issue in five minutes", "they even called back to check on me",
        "they were honest about the cost", "the whole process was painless",
    ),
    neg_lines=(
        "I was on hold for two hours", "they never called back", "they charged me twice",
        "the problem came back the next day", "they cancelled my appointment without telling me",
        "they damaged half of our furniture", "I had to chase them for a month",
    ),
)

DOMAINS = (MOVIE, GADGET, HOME, GEAR, RESTAURANT, HOTEL, TRAVEL, PROVIDER)

GENERIC_POS = (
    "great", "excellent", "fantastic", "wonderful", "superb", "brilliant", "terrific", "outstanding",
    "fabulous", "impressive", "amazing", "first-rate", "exceptional", "marvelous", "lovely", "delightful",
    "stellar", "splendid", "top-notch", "awesome", "fine", "cracking",
)
GENERIC_NEG = (
    "terrible", "awful", "dreadful", "horrible", "disappointing", "mediocre", "poor", "lousy", "abysmal",
    "atrocious", "underwhelming", "subpar", "miserable", "pathetic", "shoddy", "woeful", "appalling",
    "dismal", "rubbish", "frustrating", "forgettable", "bad",
)
INTENS_SHARED = (
    "very", "really", "incredibly", "extremely", "truly", "genuinely", "remarkably", "seriously", "so",
    "pretty", "quite", "surprisingly", "absolutely", "super", "rather", "totally",
)
INTENS_POS = ("wonderfully", "ridiculously", "consistently", "refreshingly")
INTENS_NEG = ("utterly", "downright", "embarrassingly", "frankly", "painfully")

ASPECT_LOVE = ("loved", "adored", "really enjoyed", "was impressed by", "really liked", "appreciated",
               "was blown away by")
ASPECT_HATE = ("hated", "could not stand", "was let down by", "really disliked", "was annoyed by",
               "was disappointed by", "did not like")
LOVE_VERBS = ("loved", "adored", "really enjoyed", "was blown away by", "could not get enough of",
              "really liked", "was impressed by", "fell in love with")
HATE_VERBS = ("hated", "could not stand", "was let down by", "really disliked", "was annoyed by",
              "was disappointed by", "regretted choosing", "was embarrassed by")

POS_OVERALL = (
    "I {love} this {item}", "one of the best {items} I have {seen} in years",
    "easily the best {item} I have ever {seen}", "worth every penny", "highly recommended",
    "I would recommend it to anyone", "a real gem", "an absolute joy", "it exceeded all my expectations",
    "{gpos} from start to finish", "I was pleasantly surprised", "it did not disappoint", "ten out of ten",
    "five stars", "it made my day", "worth the hype", "I will definitely {again}",
    "I cannot recommend this {item} enough", "I am so glad I gave it a chance", "I will happily {again}",
    "what a {gpos} {item}", "this {item} is {intens} {gpos}", "simply {gpos}", "a {gpos} {item}, full stop",
    "this {item} was a pleasure", "honestly one of my favorite {items}", "absolutely worth it",
    "I keep telling everyone about this {item}", "top marks", "a must", "would give it six stars if I could",
)
NEG_OVERALL = (
    "I {hate} this {item}", "one of the worst {items} I have {seen} in years",
    "easily the worst {item} I have ever {seen}", "a complete waste of money", "a total waste of time",
    "never again", "avoid at all costs", "I want my money back", "one star", "zero stars if I could",
    "a huge letdown", "it fell far short of my expectations", "I would not recommend it to anyone",
    "hardly worth it", "do yourself a favor and skip it", "not worth the hype", "I will never {again}",
    "save your money", "what a {gneg} {item}", "this {item} is {intens} {gneg}", "simply {gneg}",
    "a {gneg} {item}, full stop", "this {item} was a chore", "stay away", "I regret every minute of it",
    "not worth a single penny", "a complete disaster", "what a disappointment",
    "the worst money I ever spent",
    "I would not wish it on anyone", "an insult to customers",
)
POS_NEGATED = (
    "the {noun} {be_neg} bad at all", "the {noun} {be_neg} bad", "honestly, the {noun} {be} not bad",
    "I have no complaints about the {noun}", "there was nothing wrong with the {noun}",
    "I can't fault the {noun}", "the {noun} could not have been better", "the {noun} {be_neg} disappointing",
    "the {noun} {be_neg} {neg} in the slightest", "the {noun} {be} never {neg}", "not a bad {item} at all",
    "not bad at all", "not bad, not bad at all", "I never once regretted choosing this {item}",
    "it was not a waste of money at all", "hard to find fault with the {noun}", "I couldn't ask for more",
    "I wasn't disappointed for a second", "nothing to complain about", "it didn't let me down once",
    "I have nothing bad to say about the {noun}", "not a single complaint",
)
NEG_NEGATED = (
    "the {noun} {be_neg} {pos} at all", "the {noun} {be_neg} very {pos}",
    "the {noun} {be} not up to standard", "the {noun} {be} barely acceptable",
    "the {noun} {be} nothing special", "the {noun} {be} far from {pos}",
    "the {noun} did not live up to the hype", "the {noun} could have been much better",
    "I did not enjoy the {noun}", "I can't say I liked the {noun}", "the {noun} {be} hardly {pos}",
    "there was nothing good about the {noun}", "not a good {item} at all", "not good, not good at all",
    "not worth it", "hardly worth it", "not impressed", "not what I expected, and not in a good way",
    "I can't recommend it", "it never lived up to the reviews", "I wouldn't call the {noun} {pos}",
    "I could have done without the {noun}", "it didn't work for me at all",
)
POS_CONTRAST_OVERALL = (
    "I still {love} it", "it was still worth every penny", "overall I was very happy",
    "I would still recommend it", "the rest more than made up for it", "I would happily {again} anyway",
    "I still had a great time", "it is still a {gpos} {item}", "it won me over in the end",
    "overall it was {gpos}", "I don't regret it one bit",
)
NEG_CONTRAST_OVERALL = (
    "overall it was a letdown", "that was not enough to save it", "I still would not recommend it",
    "overall I was disappointed", "it was not worth the money", "nothing could make up for that",
    "I will not {again}", "the rest was {gneg}", "it is still a {gneg} {item}", "overall it was {gneg}",
    "I regret it",
)
POS_COMPARE = (
    "much better than I expected", "even better than the reviews say", "better than the last {item} I had",
    "way better than anything else in this price range", "as good as everyone says",
    "a big step up from the last one", "far better than I feared",
)
NEG_COMPARE = (
    "much worse than I expected", "not as good as the reviews said", "nowhere near as good as the last one",
    "worse than the cheap {item} I had before", "a big step down from the last one",
    "not half as good as everyone claims", "far worse than I feared",
)
COMPARE_SUBJECTS = ("this {item} is", "the {item} was", "honestly, it was", "it turned out to be", "it was")
CONTRAST_FORMS = (
    "{a}, but {b}", "{a} but {b}", "{a}. But {b}", "although {a}, {b}", "{b}, even though {a}",
    "{a}; however, {b}", "{a}, yet {b}", "sure, {a}, but {b}", "{a}. Still, {b}", "while {a}, {b}",
    "{a}. That said, {b}", "{b}, despite the fact that {a}", "{a}, and yet {b}",
)
END_PUNCT = (".", ".", ".", ".", "!", "!", "!!", "...", "", "")
EMPHASIS = ("so", "really", "very", "never", "not", "best", "worst", "love", "hate", "loved", "hated")

# fmt: on


def _single_word(adj: str) -> bool:
    return " " not in adj


def _be(plural: bool, tense: str, negated: bool = False) -> str:
    past = tense == "past"
    word = ("were" if past else "are") if plural else ("was" if past else "is")
    return word + "n't" if negated else word


def _intens(rng: random.Random, pol: bool, adj: str, p: float = 0.5) -> str:
    if not _single_word(adj) or rng.random() >= p:
        return adj
    pool = INTENS_SHARED + (INTENS_POS if pol else INTENS_NEG)
    return f"{rng.choice(pool)} {adj}"


def _fill(rng: random.Random, dom: Domain, pol: bool, template: str, aspect: Aspect | None = None) -> str:
    """Fill the {slots} of a sentiment template with words from `dom`."""
    asp = aspect or rng.choice(dom.aspects)
    tense = dom.tense
    item, items = rng.choice(dom.items)
    single_pos = [a for a in asp.pos if _single_word(a)] or list(asp.pos)
    single_neg = [a for a in asp.neg if _single_word(a)] or list(asp.neg)
    be_word = _be(asp.plural, tense)
    values = {
        "item": item,
        "items": items,
        "noun": asp.noun,
        "be": be_word,
        "be_neg": _be(asp.plural, tense, negated=True) if rng.random() < 0.6 else be_word + " not",
        "pos": rng.choice(single_pos),
        "neg": rng.choice(single_neg),
        "gpos": rng.choice(GENERIC_POS),
        "gneg": rng.choice(GENERIC_NEG),
        "intens": rng.choice(INTENS_SHARED + (INTENS_POS if pol else INTENS_NEG)),
        "love": rng.choice(LOVE_VERBS),
        "hate": rng.choice(HATE_VERBS),
        "seen": rng.choice(dom.seen),
        "again": rng.choice(dom.again),
    }
    return _fix_articles(template.format(**values))


def _fix_articles(text: str) -> str:
    return re.sub(r"\b([Aa])n? ([a-z][\w-]*)", _article, text)


def _article(m: re.Match[str]) -> str:
    a, word = m.group(1), m.group(2)
    vowel = word[0] in "aeiou" and not word.startswith(("one", "use", "uni", "eu"))
    return f"{a}{'n' if vowel else ''} {word}"


def aspect_clause(rng: random.Random, dom: Domain, pol: bool, aspect: Aspect | None = None) -> str:
    asp = aspect or rng.choice(dom.aspects)
    adj = rng.choice(asp.pos if pol else asp.neg)
    be = _be(asp.plural, dom.tense)
    r = rng.random()
    if r < 0.62:
        return f"the {asp.noun} {be} {_intens(rng, pol, adj)}"
    if r < 0.8:
        return f"I {rng.choice(ASPECT_LOVE if pol else ASPECT_HATE)} the {asp.noun}"
    if r < 0.9:
        return f"the {asp.noun}? {_intens(rng, pol, adj, 0.4)}"
    opener = rng.choice(("honestly", "frankly", "to be fair", "I have to say", "I must say", "wow"))
    return f"{opener}, the {asp.noun} {be} {_intens(rng, pol, adj)}"


def negated_clause(rng: random.Random, dom: Domain, pol: bool, aspect: Aspect | None = None) -> str:
    """A negated clause; with `aspect`, one about that aspect ("the food wasn't bad at all")."""
    templates = POS_NEGATED if pol else NEG_NEGATED
    if aspect is not None:
        templates = tuple(t for t in templates if "{noun}" in t)
    return _fill(rng, dom, pol, rng.choice(templates), aspect)


def overall_clause(rng: random.Random, dom: Domain, pol: bool) -> str:
    if rng.random() < 0.3:
        return rng.choice(dom.pos_lines if pol else dom.neg_lines)
    return _fill(rng, dom, pol, rng.choice(POS_OVERALL if pol else NEG_OVERALL))


def _about(rng: random.Random, dom: Domain, pol: bool, aspect: Aspect, p_negated: float) -> str:
    if rng.random() < p_negated:
        return negated_clause(rng, dom, pol, aspect)
    return aspect_clause(rng, dom, pol, aspect)


def contrast_review(rng: random.Random, dom: Domain, pol: bool) -> str:
    """Two opposite clauses; the one after "but" (or the main clause) carries the label."""
    first, second = rng.sample(dom.aspects, 2)
    a = _about(rng, dom, not pol, first, 0.25)
    if rng.random() < 0.5:
        b = _about(rng, dom, pol, second, 0.15)
    else:
        b = _fill(rng, dom, pol, rng.choice(POS_CONTRAST_OVERALL if pol else NEG_CONTRAST_OVERALL))
    return rng.choice(CONTRAST_FORMS).format(a=a, b=b)


def list_review(rng: random.Random, dom: Domain, pol: bool) -> str:
    count = rng.choice((2, 3, 3, 4))
    parts = []
    for asp in rng.sample(dom.aspects, count):
        adjs = [a for a in (asp.pos if pol else asp.neg) if not a.startswith(("a ", "an "))]
        parts.append(f"{rng.choice(adjs)} {asp.noun}")
    text = ", ".join(parts[:-1]) + rng.choice((" and ", ", ", ", and ")) + parts[-1]
    if rng.random() < 0.5:
        text += ". " + overall_clause(rng, dom, pol)
    return text


def compare_review(rng: random.Random, dom: Domain, pol: bool) -> str:
    subject = rng.choice(COMPARE_SUBJECTS)
    return _fill(rng, dom, pol, f"{subject} {rng.choice(POS_COMPARE if pol else NEG_COMPARE)}")


def multi_review(rng: random.Random, dom: Domain, pol: bool) -> str:
    first, second = rng.sample(dom.aspects, 2)
    joiner = rng.choice((", and ", " and ", ". ", "; ", ", plus ", ". Also, ", " and on top of that "))
    text = aspect_clause(rng, dom, pol, first) + joiner + _about(rng, dom, pol, second, 0.35)
    if rng.random() < 0.3:
        text += ". " + overall_clause(rng, dom, pol)
    return text


REVIEW_KINDS: tuple[tuple[Callable[[random.Random, Domain, bool], str], float], ...] = (
    (aspect_clause, 0.15),
    (negated_clause, 0.14),
    (overall_clause, 0.12),
    (contrast_review, 0.22),
    (list_review, 0.08),
    (compare_review, 0.06),
    (multi_review, 0.23),
)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentences(text: str, rng: random.Random) -> str:
    """Capitalise each sentence and give the last one end punctuation."""
    parts = [_cap(p) for p in text.split(". ")]
    end = rng.choice(END_PUNCT)
    body = ". ".join(parts)
    if body.endswith("?"):
        end = ""
    return body + end


def make_review(rng: random.Random, pol: bool) -> str:
    dom = rng.choice(DOMAINS)
    if rng.random() < 0.2:  # one tense per review, usually the domain's own
        dom = replace(dom, tense="present" if dom.tense == "past" else "past")
    kinds = [k for k, _ in REVIEW_KINDS]
    weights = [w for _, w in REVIEW_KINDS]
    kind = rng.choices(kinds, weights)[0]
    text = kind(rng, dom, pol)
    if rng.random() < 0.2:
        context = _fill(rng, dom, pol, rng.choice(dom.context))
        joiners = (". ", ". ", ", and ", " - ") if text.startswith(("the ", "I ")) else (". ", " - ")
        text = context + rng.choice(joiners) + text
    elif rng.random() < 0.12:
        text += ". " + overall_clause(rng, dom, pol)
    text = _sentences(text, rng)
    r = rng.random()
    if r < 0.1:
        text = text.lower()
    elif r < 0.16:
        words = text.split(" ")
        hits = [i for i, w in enumerate(words) if w.lower().strip(",.!?") in EMPHASIS]
        if hits:
            i = rng.choice(hits)
            words[i] = words[i].upper()
            text = " ".join(words)
    return text


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9' ]+", "", text.lower()).strip()


def make_sentiment(rng: random.Random) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    train: list[tuple[str, str]] = []
    validation: list[tuple[str, str]] = []
    seen: set[str] = set()
    per_label = SENTIMENT_TRAIN_PER_LABEL + SENTIMENT_VALIDATION_PER_LABEL
    for pol, label in ((False, "negative"), (True, "positive")):
        rows: list[str] = []
        while len(rows) < per_label:
            text = make_review(rng, pol)
            key = _norm(text)
            if not MIN_REVIEW_WORDS <= len(text.split()) <= MAX_REVIEW_WORDS or key in seen:
                continue
            seen.add(key)
            rows.append(text)
        validation += [(t, label) for t in rows[:SENTIMENT_VALIDATION_PER_LABEL]]
        train += [(t, label) for t in rows[SENTIMENT_VALIDATION_PER_LABEL:]]
    rng.shuffle(train)
    rng.shuffle(validation)
    return train, validation


# ---------------------------------------------------------------------------------------------------
# NER
# ---------------------------------------------------------------------------------------------------

# fmt: off
FIRST_NAMES = (
    # English / Irish / Scottish
    "James", "Emily", "Oliver", "Charlotte", "Liam", "Siobhan", "Fiona", "Callum", "Harriet", "Thomas",
    # German / Dutch / Scandinavian
    "Lukas", "Anna", "Jan", "Greta", "Sven", "Ingrid", "Maarten", "Femke", "Lars", "Astrid", "Matthias",
    # French / Italian / Spanish / Portuguese
    "Camille", "Julien", "Giulia", "Marco", "Lucia", "Alejandro", "Carmen", "Joao", "Beatriz", "Pierre",
    "Sofia", "Diego", "Chiara", "Mateo", "Ines",
    # Slavic / Greek / Hungarian / Romanian
    "Piotr", "Katarzyna", "Dmitri", "Olena", "Miroslav", "Jelena", "Nikos", "Eleni", "Zoltan", "Ioana",
    # Turkish / Arabic / Persian
    "Mehmet", "Elif", "Omar", "Layla", "Youssef", "Fatima", "Karim", "Nour", "Reza", "Shirin",
    # South Asian
    "Priya", "Arjun", "Rahul", "Ananya", "Imran", "Ayesha", "Sanjay", "Deepa",
    # East and South-East Asian
    "Wei", "Mei", "Hiroshi", "Yuki", "Min-jun", "Ji-woo", "Thanh", "Linh", "Somchai", "Putri",
    # African
    "Chidi", "Amara", "Kwame", "Abena", "Tendai", "Wanjiru", "Kofi", "Ngozi", "Thabo", "Zanele", "Tariq",
    "Aminata",
    # Latin American
    "Valentina", "Sebastian", "Camila", "Rafael", "Gabriela", "Andres", "Paola",
)
LAST_NAMES = (
    "Whitfield", "Harrington", "O'Connell", "MacLeod", "Thornton", "Ashworth", "Pemberton", "Doyle",
    "Brandt", "Kessler", "Vogel", "Hartmann", "van der Berg", "de Vries", "Jansen", "Lindqvist", "Halvorsen",
    "Nyberg", "Dubois", "Lefevre", "Moreau", "Bianchi", "Ferraro", "Rinaldi", "Castillo", "Navarro",
    "Herrera", "Oliveira", "Carvalho", "da Silva", "Kowalski", "Nowak", "Volkov", "Petrenko", "Horvat",
    "Papadakis", "Nagy", "Popescu", "Yilmaz", "Demir", "Haddad", "Mansour", "El Amrani", "Al-Rashid",
    "Karimi", "Tehrani", "Sharma", "Iyer", "Chaudhry", "Banerjee", "Khan", "Zhang", "Liu", "Chen",
    "Tanaka", "Sato", "Nakamura", "Kim", "Park", "Nguyen", "Tran", "Srisuk", "Wijaya", "Okafor", "Mensah",
    "Adeyemi", "Boateng", "Mwangi", "Otieno", "Moyo", "Dlamini", "Diallo", "Traore", "Mendoza", "Vargas",
    "Rojas", "Fuentes", "Castro", "Pereira", "Sorensen", "Becker", "Marchetti", "Kovac", "Lindgren",
    "Abubakar", "Osei", "Hakimi", "Ozturk", "Fischer-Lang", "Santos-Ruiz",
)
TITLES = ("President", "Prime Minister", "Minister", "Senator", "Chancellor", "Foreign Minister",
          "Finance Minister", "Governor")

COMPANIES = (
    "Northwind Logistics", "Halden Steel", "Brightwater Energy", "Corvane Systems", "Meridian Foods",
    "Altmark Bank", "Kestrel Airways", "Solberg Motors", "Pacifica Mining", "Ardent Pharma", "Tessaro Group",
    "Velmont Insurance", "Orsa Telecom", "Bluestone Capital", "Harwick & Sons", "Lindqvist Shipping",
    "Marova Chemicals", "Quilan Technologies", "Sandor Holdings", "Okapi Media", "Zentara", "Novalis",
    "Veltrix", "Omnicor", "Castellan Foods", "Eastgate Retail", "Takumi Electronics", "Rahimi Textiles",
    "Nordhaven Bank", "Suncoast Airlines", "Granite Peak Resources", "Helix Biotech", "Aurora Semiconductors",
    "Tamsin Motors", "Greyfield Partners", "Lumora", "Baltica Ferries", "Kinto Robotics", "Sahel Cement",
    "Riverton Bank of Commerce", "Obi Agro Industries", "Vantor Aerospace", "Elmridge Publishing",
)
INSTITUTIONS = (
    "European Central Bank", "United Nations", "European Union", "World Health Organization",
    "International Monetary Fund", "World Bank", "NATO", "Red Cross", "World Trade Organization",
    "African Union", "OPEC", "Federal Reserve", "Bank of England", "Bank of Japan", "UNICEF",
    "Amnesty International", "European Commission", "Interpol", "Council of Europe", "Arab League",
    "Organisation for Economic Co-operation and Development", "UNESCO", "Asian Development Bank",
)
CENTRAL_BANKS = ("European Central Bank", "Federal Reserve", "Bank of England", "Bank of Japan",
                 "Reserve Bank of India", "Swiss National Bank")
SCIENCE_BODIES = (
    "NASA", "European Space Agency", "Max Planck Institute", "University of Toronto", "Oxford University",
    "Stanford University", "University of Cape Town", "Seoul National University", "Karolinska Institute",
    "University of Melbourne", "Tsinghua University", "Humboldt University", "Indian Institute of Science",
    "University of Nairobi", "Pasteur Institute", "Royal Society",
)
SPORT_BODIES = ("FIFA", "UEFA", "International Olympic Committee", "Football Association", "World Athletics",
                "International Tennis Federation", "Confederation of African Football")
PARTIES = ("Social Democrats", "Green Party", "Liberal Democratic Party", "Labour Party",
           "Christian Democrats", "National Party", "People 's Party", "Freedom Alliance", "Workers ' Party",
           "Centre Union")
# Organisations written with "the" in running text ("the World Bank", but "NASA", "Zentara").
ORGS_WITH_THE = frozenset({
    "European Central Bank", "United Nations", "European Union", "World Health Organization",
    "International Monetary Fund", "World Bank", "Red Cross", "World Trade Organization", "African Union",
    "Federal Reserve", "Bank of England", "Bank of Japan", "Reserve Bank of India", "Swiss National Bank",
    "European Commission", "Council of Europe",
    "Arab League", "Organisation for Economic Co-operation and Development", "Asian Development Bank",
    "European Space Agency", "Max Planck Institute", "University of Toronto", "University of Cape Town",
    "Karolinska Institute", "University of Melbourne", "Indian Institute of Science", "University of Nairobi",
    "Pasteur Institute", "Royal Society", "International Olympic Committee", "Football Association",
    "International Tennis Federation", "Confederation of African Football",
})
CLUBS = (
    "Bayern Munich", "Manchester United", "Real Madrid", "Ajax", "Juventus", "Celtic", "Benfica",
    "Galatasaray", "Boca Juniors", "Riverside Rovers", "FC Nordstadt", "Atletico Serrano", "Harbour City FC",
    "Kingsbridge Athletic", "Sporting Valmar", "Dynamo Koretsk", "Red Star Halden", "Union Marelle",
    "Al Noor Club", "Lagos Lions", "Eastvale United", "Olympique Sarrant", "Kaizen Osaka", "Cruzeiro Azul",
    "Wellford Wanderers",
)

CITIES = (
    "London", "Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Warsaw", "Prague", "Vienna", "Athens",
    "Istanbul", "Cairo", "Nairobi", "Lagos", "Accra", "Johannesburg", "Cape Town", "Mumbai", "New Delhi",
    "Karachi", "Dhaka", "Jakarta", "Manila", "Bangkok", "Hanoi", "Beijing", "Shanghai", "Tokyo", "Osaka",
    "Seoul", "Sydney", "Melbourne", "Auckland", "Toronto", "Vancouver", "New York", "Chicago", "Los Angeles",
    "Mexico City", "Bogota", "Lima", "Santiago", "Buenos Aires", "Sao Paulo", "Rio de Janeiro", "Moscow",
    "Kyiv", "Stockholm", "Oslo", "Helsinki", "Copenhagen", "Dublin", "Edinburgh", "Brussels", "Amsterdam",
    "Geneva", "Zurich", "Frankfurt", "Munich", "Milan", "Marseille", "Tehran", "Riyadh", "Dubai",
    "Abu Dhabi", "Beirut", "Ankara", "Tunis", "Casablanca", "Dakar", "Kinshasa", "Addis Ababa", "Kampala",
    "Kuala Lumpur", "Singapore", "Hong Kong", "Ho Chi Minh City", "Montreal", "Krakow", "Porto Alegre",
)
COUNTRIES = (
    "Germany", "France", "Spain", "Italy", "Portugal", "Poland", "Ukraine", "Greece", "Turkey", "Egypt",
    "Kenya", "Nigeria", "Ghana", "South Africa", "Ethiopia", "Morocco", "India", "Pakistan", "Bangladesh",
    "Indonesia", "Vietnam", "China", "Japan", "South Korea", "Australia", "New Zealand", "Mexico", "Colombia",
    "Peru", "Chile", "Argentina", "Brazil", "Russia", "Sweden", "Norway", "Finland", "Denmark", "Ireland",
    "Britain", "Belgium", "Switzerland", "Austria", "Croatia", "Hungary", "Romania", "Iran", "Saudi Arabia",
    "Lebanon", "Tunisia", "Senegal", "Sri Lanka", "Thailand", "Malaysia", "Qatar", "Uruguay", "Tanzania",
    "Iceland", "Costa Rica", "Canada",
)
RIVERS = ("Danube", "Rhine", "Nile", "Mekong", "Thames", "Seine", "Volga", "Ganges", "Zambezi", "Yangtze",
          "Rio Grande", "Elbe", "Mississippi", "Orinoco", "Vistula", "Tagus")
REGIONS = (
    "Bavaria", "Catalonia", "Patagonia", "Siberia", "Tuscany", "Scandinavia", "Andalusia", "Quebec",
    "Texas", "California", "Flanders", "Sicily", "Punjab", "Scotland", "Wales", "Lapland", "Anatolia",
    "Kerala", "Hokkaido", "Queensland", "Transylvania", "Normandy", "Galicia", "Rift Valley",
)
REGIONS_THE = ("Middle East", "Balkans", "Alps", "Caribbean", "Sahel", "Horn of Africa", "Himalayas",
               "Baltic", "Pacific", "Mediterranean", "Gulf of Mexico", "North Sea", "Red Sea")

NATIONALITIES = (
    "German", "French", "Spanish", "Italian", "Portuguese", "Polish", "Ukrainian", "Greek", "Turkish",
    "Egyptian", "Kenyan", "Nigerian", "Ghanaian", "South African", "Ethiopian", "Moroccan", "Indian",
    "Pakistani", "Indonesian", "Filipino", "Vietnamese", "Chinese", "Japanese", "South Korean",
    "Australian", "Canadian", "American", "Mexican", "Colombian", "Peruvian", "Chilean", "Argentine",
    "Brazilian", "Russian", "Swedish", "Norwegian", "Finnish", "Danish", "Irish", "British", "Belgian",
    "Dutch", "Swiss", "Austrian", "Czech", "Hungarian", "Romanian", "Iranian", "Saudi", "Lebanese",
    "Tunisian", "Senegalese", "Thai", "Malaysian", "European", "African", "Asian", "Latin American",
    "Scottish", "Welsh", "Uruguayan", "Icelandic",
)
NATIONALITY_PLURALS = ("Germans", "Italians", "Nigerians", "Brazilians", "Australians", "Canadians",
                       "Americans", "Japanese", "Kenyans", "Swedes", "Poles", "Greeks", "Mexicans",
                       "Indians", "Europeans", "Argentines", "Dutch", "Irish")
LANGUAGES = ("English", "French", "Spanish", "Arabic", "Mandarin", "Hindi", "Swahili", "Portuguese",
             "Russian", "German", "Japanese", "Korean", "Turkish", "Bengali", "Urdu", "Yoruba", "Dutch",
             "Italian", "Polish", "Catalan", "Tamil", "Greek", "Cantonese", "Zulu", "Basque", "Welsh")
EVENTS = ("World Cup", "Olympic Games", "Tour de France", "Champions League", "Davis Cup", "Australian Open",
          "Super Bowl", "Africa Cup of Nations", "Asian Games", "Commonwealth Games", "European Championship",
          "Ryder Cup", "Copa America", "Paralympic Games", "Rugby World Cup", "Winter Olympics",
          "Europa League", "US Open", "Cricket World Cup", "Grand Prix")
FESTIVALS = ("Cannes Film Festival", "Berlin Film Festival", "Venice Film Festival", "Edinburgh Festival",
             "Eurovision Song Contest", "Sundance Film Festival", "Toronto International Film Festival")
BOOK_PRIZES = ("Nobel Prize", "Booker Prize", "Pulitzer Prize", "Goncourt Prize", "Hugo Award")
SCIENCE_PRIZES = ("Nobel Prize", "Fields Medal", "Abel Prize", "Kyoto Prize", "Lasker Award", "Wolf Prize")
FILM_PRIZES = ("Palme d'Or", "Golden Bear", "Golden Lion", "Golden Globe")
RELIGIONS = ("Muslim", "Christian", "Catholic", "Buddhist", "Hindu", "Jewish", "Protestant", "Orthodox",
             "Sikh")

ROLES = ("spokesman", "spokeswoman", "chief executive", "chairman", "analyst", "economist", "director",
         "lawyer", "researcher", "official", "adviser", "negotiator", "professor", "manager")
SPORT_ROLES = ("striker", "midfielder", "defender", "goalkeeper", "winger", "forward", "captain", "coach")
SPORTS = ("SOCCER", "TENNIS", "ATHLETICS", "CYCLING", "RUGBY", "GOLF", "BASKETBALL", "CRICKET")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
# fmt: on

Token = tuple[str, str]


def _entity(text: str, kind: str) -> list[Token]:
    words = text.split()
    return [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(words)]


def _plain(text: str) -> list[Token]:
    return [(w, "O") for w in text.split()]


def _person(rng: random.Random) -> list[Token]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    r = rng.random()
    if r < 0.06:
        return _entity(f"{first[0]}. {last}", "PER")
    if r < 0.1:
        return _entity(f"{first} {rng.choice(FIRST_NAMES)[0]}. {last}", "PER")
    return _entity(f"{first} {last}", "PER")


def _number(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return str(rng.randint(2, 99))
    if r < 0.7:
        return str(rng.randint(100, 999))
    return f"{rng.randint(1, 95)},{rng.randint(0, 999):03d}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _money(rng: random.Random) -> str:
    amount = f"{rng.randint(1, 40)}.{rng.randint(1, 9)}"
    unit = rng.choice(("million", "billion"))
    return rng.choice(
        (
            f"$ {amount} {unit}",
            f"{amount} {unit} euros",
            f"{amount} {unit} dollars",
            f"{amount} {unit} pounds",
            f"{rng.randint(2, 900)} million yen",
        )
    )


def _org(rng: random.Random, names: Sequence[str]) -> list[Token]:
    """An organisation, with an untagged "the" before the names that take one."""
    name = rng.choice(names)
    entity = _entity(name, "ORG")
    return [("the", "O"), *entity] if name in ORGS_WITH_THE or names is PARTIES else entity


def _region(rng: random.Random) -> list[Token]:
    if rng.random() < 0.6:
        return _entity(rng.choice(REGIONS), "LOC")
    return [("the", "O"), *_entity(rng.choice(REGIONS_THE), "LOC")]


SLOTS: dict[str, Callable[[random.Random], list[Token]]] = {
    "PER": _person,
    "PERL": lambda r: _entity(r.choice(LAST_NAMES), "PER"),
    "CO": lambda r: _org(r, COMPANIES),
    "INST": lambda r: _org(r, INSTITUTIONS),
    "SCI": lambda r: _org(r, SCIENCE_BODIES),
    "CBANK": lambda r: _org(r, CENTRAL_BANKS),
    "SPORTORG": lambda r: _org(r, SPORT_BODIES),
    "PARTY": lambda r: _org(r, PARTIES),
    "CLUB": lambda r: _org(r, CLUBS),
    "ORG": lambda r: _org(r, COMPANIES + INSTITUTIONS + SCIENCE_BODIES),
    "CITY": lambda r: _entity(r.choice(CITIES), "LOC"),
    "COUNTRY": lambda r: _entity(r.choice(COUNTRIES), "LOC"),
    "LOC": lambda r: _entity(r.choice(CITIES + COUNTRIES), "LOC"),
    "RIVER": lambda r: _entity(r.choice(RIVERS), "LOC"),
    "REGION": _region,
    "LAND": lambda r: _entity(r.choice(REGIONS), "LOC"),
    "NAT": lambda r: _entity(r.choice(NATIONALITIES), "MISC"),
    "NATS": lambda r: _entity(r.choice(NATIONALITY_PLURALS), "MISC"),
    "LANG": lambda r: _entity(r.choice(LANGUAGES), "MISC"),
    "EVENT": lambda r: _entity(r.choice(EVENTS), "MISC"),
    "FEST": lambda r: _entity(r.choice(FESTIVALS), "MISC"),
    "BOOKPRIZE": lambda r: _entity(r.choice(BOOK_PRIZES), "MISC"),
    "SCIPRIZE": lambda r: _entity(r.choice(SCIENCE_PRIZES), "MISC"),
    "FILMPRIZE": lambda r: _entity(r.choice(FILM_PRIZES), "MISC"),
    "RELIG": lambda r: _entity(r.choice(RELIGIONS), "MISC"),
    "TITLE": lambda r: _plain(r.choice(TITLES)),
    "ROLE": lambda r: _plain(r.choice(ROLES)),
    "SROLE": lambda r: _plain(r.choice(SPORT_ROLES)),
    "SPORT": lambda r: _plain(r.choice(SPORTS)),
    "DAY": lambda r: _plain(r.choice(DAYS)),
    "MONTH": lambda r: _plain(r.choice(MONTHS)),
    "DATE": lambda r: _plain(
        r.choice((f"{r.choice(MONTHS)} {r.randint(1, 28)}", f"{r.randint(1, 28)} {r.choice(MONTHS)}"))
    ),
    "YEAR": lambda r: _plain(str(r.randint(1990, 2031))),
    "NUM": lambda r: _plain(_number(r)),
    "FEW": lambda r: _plain(str(r.randint(2, 45))),
    "PCT": lambda r: _plain(r.choice((str(r.randint(1, 40)), f"{r.randint(0, 12)}.{r.randint(1, 9)}"))),
    "MONEY": lambda r: _plain(_money(r)),
    "SCORE": lambda r: _plain(f"{r.randint(1, 5)}-{r.randint(0, 3)}"),
    "GOALS": lambda r: _plain(str(r.randint(0, 4))),
    "TSCORE": lambda r: _plain(
        f"{r.choice(('6-4', '6-3', '7-5', '6-2', '7-6'))} {r.choice(('6-4', '6-1', '7-6', '3-6', '6-0'))}"
    ),
    "TIME": lambda r: _plain(
        r.choice(
            (
                f"{r.randint(9, 10)}.{r.randint(10, 99)}",
                f"2:{r.randint(3, 15):02d}:{r.randint(0, 59):02d}",
                f"{r.randint(3, 4)}:{r.randint(0, 59):02d}.{r.randint(10, 99)}",
            )
        )
    ),
    "MINUTE": lambda r: _plain(_ordinal(r.randint(3, 90))),
    "MINNUM": lambda r: _plain(str(r.randint(2, 90))),
    "AGE": lambda r: _plain(str(r.randint(19, 78))),
    "MAG": lambda r: _plain(f"{r.randint(4, 7)}.{r.randint(0, 9)}"),
    "PRICE": lambda r: _plain(f"{r.randint(3, 250)}.{r.randint(0, 99):02d}"),
}

# Slots whose value may repeat within a sentence (numbers, days); any other slot never does ("X beat X").
REPEATABLE_SLOTS = frozenset({"GOALS", "NUM", "FEW", "PCT", "MONEY", "SCORE", "TIME", "DAY", "AGE"})

# One sentence per line; {SLOT} is filled from SLOTS, any other token is O. A leading "^" marks a
# headline, which is written in capitals.
NER_TEMPLATES = """
{PER} , the {NAT} foreign minister , arrived in {CITY} on {DAY} for talks with {PER} .
{COUNTRY} and {COUNTRY} signed a trade agreement in {CITY} on {DATE} .
{INST} said on {DAY} it would send a team of experts to {COUNTRY} .
{TITLE} {PER} told parliament that {COUNTRY} would not leave {INST} .
" We will not accept these terms , " {PERL} told reporters in {CITY} .
{NAT} officials met representatives of {INST} in {CITY} on {DAY} .
Opposition leader {PER} accused the government of ignoring voters in {LAND} .
{PER} won {PCT} percent of the vote in the regional election in {LAND} .
{PARTY} named {PER} as its candidate for mayor of {CITY} .
Thousands of people marched through {CITY} on {DAY} to protest against the new law .
{COUNTRY} 's parliament approved the budget by {NUM} votes to {NUM} .
Talks between {COUNTRY} and {INST} will resume in {CITY} next week , a spokesman said .
{PERL} said the {NAT} delegation would present its proposal on {DAY} .
The ambassador of {COUNTRY} was summoned to the foreign ministry in {CITY} .
President {PER} will visit {COUNTRY} , {COUNTRY} and {COUNTRY} later this month .
{INST} inspectors are expected to arrive in {CITY} on {DAY} .
{PARTY} won {NUM} of the {NUM} seats , according to official results .
{PER} , leader of {PARTY} , resigned on {DAY} after the election defeat .
{NAT} and {NAT} negotiators reached a deal on fishing rights in {REGION} .
The summit in {CITY} was attended by leaders from {FEW} countries , including {COUNTRY} .
A spokeswoman for {INST} declined to comment on the report .
{CITY} has been chosen to host the next meeting of {INST} .
Relations between {COUNTRY} and {COUNTRY} have improved since {YEAR} , {PER} said .
{RELIG} and {RELIG} leaders called for calm after the attack in {CITY} .
Police in {CITY} said they had arrested a {NAT} man in connection with the robbery .
The new {NAT} ambassador to {COUNTRY} is {PER} .
Elections in {COUNTRY} are due to be held in {MONTH} .
{PER} was sworn in as governor of {LAND} on {DATE} .
" This is a historic day for {COUNTRY} , " said {PER} .
{CO} said on {DAY} its net profit rose {PCT} percent to {MONEY} .
Shares in {CO} fell {PCT} percent in {CITY} after the company cut its forecast .
{CO} chief executive {PER} said the company would open a new plant in {CITY} .
{CBANK} left interest rates unchanged at {PCT} percent on {DAY} .
The decision by {CBANK} surprised analysts at {CO} .
{CO} agreed to buy {NAT} rival {CO} for {MONEY} .
Analysts at {CO} expect the {NAT} economy to grow {PCT} percent in {YEAR} .
{PER} , an economist at {CO} in {CITY} , said inflation would ease .
{CO} will cut {NUM} jobs at its factory near {CITY} , the union said .
The deal makes {CO} the largest supplier of steel in {REGION} .
{CO} shares closed at {PRICE} in {CITY} on {DAY} .
Oil prices rose on {DAY} after reports of new fighting in {REGION} .
The company , based in {CITY} , employs about {NUM} people in {COUNTRY} .
{CO} and {CO} announced a joint venture to build ships in {COUNTRY} .
Exports to {COUNTRY} rose {PCT} percent in {MONTH} , {INST} said .
{CO} has appointed {PER} as its new {ROLE} .
{CO} 's {ROLE} {PER} said sales in {COUNTRY} were weaker than expected .
The {NAT} government owns {PCT} percent of {CO} .
{CO} plans to list its shares in {CITY} and {CITY} next year .
{NAT} carmaker {CO} recalled {NUM} vehicles on {DAY} .
A court in {CITY} fined {CO} {MONEY} for breaking competition rules .
" Demand in {REGION} remains strong , " said {PER} , a {ROLE} at {CO} .
{CO} opened its first store in {COUNTRY} on {DATE} .
Workers at the {CO} plant in {CITY} went on strike on {DAY} .
{CLUB} beat {CLUB} {SCORE} on {DAY} to go top of the table .
{PER} scored twice as {CLUB} won {SCORE} in {CITY} .
{NAT} {SROLE} {PER} has signed a three-year contract with {CLUB} .
{NAT} {PER} won the men 's 100 metres in {TIME} seconds .
{NAT} {PER} won the women 's marathon in {TIME} .
{PER} ( {COUNTRY} ) {TIME}
{PER} ( {COUNTRY} ) beat {PER} ( {COUNTRY} ) {TSCORE}
{CLUB} {GOALS} {CLUB} {GOALS}
{COUNTRY} will host the {EVENT} in {YEAR} , {SPORTORG} announced .
{PER} withdrew from the {EVENT} with a knee injury .
{CLUB} coach {PER} said his team deserved to win .
{COUNTRY} qualified for the {EVENT} after a {SCORE} win over {COUNTRY} .
The {NAT} team arrived in {CITY} on {DAY} ahead of the {EVENT} .
{PER} finished third behind {PER} and {PER} .
^{SPORT} - {CLUB} SIGN {NAT} DEFENDER {PERL}
^{SPORT} - {PERL} WINS IN {CITY}
^{SPORT} - {COUNTRY} BEAT {COUNTRY} TO REACH FINAL
{PER} , who joined {CLUB} from {CLUB} in {YEAR} , is out for six weeks .
Goalkeeper {PER} kept a clean sheet as {CLUB} drew 0-0 with {CLUB} .
The {EVENT} final will be played in {CITY} on {DATE} .
{PERL} 's goal in the {MINUTE} minute gave {CLUB} the lead .
Fans of {CLUB} celebrated in the streets of {CITY} until dawn .
{PER} became the first {NAT} rider to win the {EVENT} .
{SPORTORG} banned {PER} for {FEW} days on {DAY} .
{CLUB} have sacked coach {PER} after a run of five defeats .
{PERL} replaced {PERL} in the {MINUTE} minute .
{COUNTRY} won the {EVENT} for the first time since {YEAR} .
World champion {PER} pulled out of the race in {CITY} .
{PER} of {CLUB} was named player of the month .
Researchers at {SCI} found that the drug reduced symptoms in {NUM} patients .
The {BOOKPRIZE} was awarded to {NAT} writer {PER} .
{PER} 's novel has been translated into {LANG} , {LANG} and {LANG} .
The film , shot in {COUNTRY} , will premiere at the {FEST} in {MONTH} .
Most people in {LAND} speak {LANG} as their first language .
{PER} , a professor at {SCI} , led the study .
Scientists from {COUNTRY} and {COUNTRY} will work together on the mission , {SCI} said .
An exhibition of {NAT} paintings opens in {CITY} next month .
The {NAT} director {PER} won the top prize at the {FEST} .
{FILMPRIZE} winner {PER} will head the jury in {CITY} this year .
The {NAT} film took the {FILMPRIZE} on {DAY} .
{PER} sang in {LANG} at the {FEST} .
The book was first published in {LANG} in {YEAR} .
{SCI} will launch the satellite from {COUNTRY} in {MONTH} .
{PER} shared the {SCIPRIZE} with {PER} of {SCI} .
Children in {COUNTRY} learn {LANG} and {LANG} at school .
The museum in {CITY} returned {FEW} statues to {COUNTRY} on {DAY} .
{NATS} bought more books in {YEAR} than in any year before , a survey found .
Heavy rain caused the {RIVER} to burst its banks near {CITY} .
The {RIVER} reached its highest level since {YEAR} on {DAY} .
An earthquake of magnitude {MAG} struck northern {COUNTRY} on {DAY} , officials said .
Floods in {REGION} have forced {NUM} people from their homes .
Temperatures in {CITY} reached {FEW} degrees Celsius on {DAY} .
Rescue teams from {COUNTRY} arrived in {CITY} to help with the search .
{CITY} police said {FEW} people were injured in the crash .
A {NAT} tourist was rescued from the {RIVER} on {DAY} .
A new bridge across the {RIVER} will link {CITY} with the north of {COUNTRY} .
Snow closed roads across {REGION} on {DAY} .
{INST} warned of food shortages in {REGION} .
Shipping on the {RIVER} was halted after a barge ran aground near {CITY} .
The talks were hosted by {PER} .
The new stadium will be built in {CITY} , {COUNTRY} .
The contract was awarded to {CO} .
{PERL} was born in {CITY} in {YEAR} .
The award went to {PER} of {CLUB} .
{PER} flew to {CITY} on {DAY} to meet {NAT} investors .
{PER} told {NAT} radio that the plan had the support of {COUNTRY} .
In {CITY} , {PER} met {PER} , the head of {ORG} .
{ORG} said the report was written in {LANG} and {LANG} .
According to {ORG} , {NATS} spent more on travel this year .
{NATS} living in {CITY} voted in large numbers on {DAY} .
Many {NATS} have moved to {COUNTRY} in search of work .
{PER} , a {NAT} citizen , was released on {DAY} .
{PER} , who is {AGE} , has lived in {CITY} since {YEAR} .
The statement was issued by {ORG} in {CITY} .
{INST} and {INST} will hold joint talks in {CITY} on {DATE} .
{NAT} media reported that {PER} would visit {CITY} .
The index fell {PCT} percent to {NUM} points on {DAY} .
Police said the fire started in a kitchen shortly after midnight .
The government will announce its decision next week , officials said .
Prices rose {PCT} percent in {MONTH} from a year earlier .
" It was a difficult game , but we stayed calm , " the coach said .
The match was postponed because of heavy snow .
Turnover was {MONEY} , up from {MONEY} a year earlier .
Voters will go to the polls on {DATE} .
The talks ended on {DAY} without an agreement .
Three people were killed and {FEW} injured when a bus overturned on {DAY} .
The central bank kept its main rate at {PCT} percent .
Both teams had chances in the second half but neither could score .
The minister resigned on {DAY} after weeks of pressure .
Unemployment fell to {PCT} percent in {MONTH} , the lowest level in a decade .
The company said it expected profits to recover in the second half .
Officials said {NUM} people had been evacuated from the area .
The court will give its ruling on {DATE} .
{PER} and {PER} will lead the {NAT} team at the {EVENT} .
{CITY} - {CO} said on {DAY} it had won a contract worth {MONEY} from {INST} .
{PER} , {AGE} , from {CITY} , was charged with fraud on {DAY} .
Speaking in {LANG} , {PER} thanked the people of {CITY} .
{NAT} {TITLE} {PER} arrived in {CITY} on {DAY} for a two-day visit .
{CO} , {CO} and {CO} were the biggest losers in {CITY} on {DAY} .
^{SPORT} - {NAT} {PERL} RETAINS TITLE
Leading scorers : {PER} ( {CLUB} ) {GOALS} , {PER} ( {CLUB} ) {GOALS}
{CLUB} 's {NAT} {SROLE} {PER} was sent off in the {MINUTE} minute .
{CLUB} {GOALS} ( {PERL} {MINNUM} ) {CLUB} {GOALS}
{COUNTRY} beat {COUNTRY} by {FEW} runs in {CITY} on {DAY} .
Tourism in {LAND} has grown since the {EVENT} was held there in {YEAR} .
{PER} has been coach of {CLUB} since {YEAR} .
Police are searching for {PER} , who went missing near the {RIVER} on {DAY} .
{PER} will present the show in {LANG} and {LANG} .
{PER} , {PER} and {PER} have been named in the squad for the {EVENT} .
{INST} officials said {NUM} refugees had crossed into {COUNTRY} from {COUNTRY} .
Flights between {CITY} and {CITY} were cancelled on {DAY} because of fog .
{CO} , which makes parts for {CO} , said profits fell {PCT} percent .
The {NAT} foreign ministry said it would send aid to {REGION} .
{PER} thanked fans in {CITY} after winning the {EVENT} .
The festival in {CITY} attracted {NUM} visitors , most of them {NATS} .
Born in {CITY} to {NAT} parents , {PERL} moved to {COUNTRY} at the age of {AGE} .
He said in an interview with a {NAT} newspaper that {CO} would not be sold .
She told reporters in {CITY} that she would stand for {PARTY} in {LAND} .
{PARTY} leader {PER} said the result was a victory for {LAND} .
{NAT} and {NAT} troops held joint exercises in {REGION} on {DAY} .
{CO} will move its headquarters from {CITY} to {CITY} in {YEAR} .
Results of the {EVENT} qualifying round on {DAY} :
{PERL} , who speaks fluent {LANG} , spent six years in {COUNTRY} .
The {RELIG} community in {CITY} opened a new school on {DAY} .
{PER} 's lawyer said his client would appeal to a court in {CITY} .
Tickets for the {EVENT} in {CITY} sold out within {FEW} minutes .
{NATS} make up about {PCT} percent of the population of {LAND} .
It was the first time a {NAT} team had reached the final since {YEAR} .
{SCI} scientists said the ice in {REGION} was melting faster than expected .
Asked about the deal , {PERL} said : " It is good for {COUNTRY} . "
The new rules will apply to all banks in {COUNTRY} from {DATE} .
The storm is expected to reach the coast on {DAY} , forecasters said .
Fans waited for hours in the rain to see the players arrive .
Sales of new cars fell for the third month in a row in {MONTH} .
The strike by dock workers entered its second week on {DAY} .
""".strip().splitlines()


def _tokens_for(template: str, rng: random.Random) -> list[Token]:
    headline = template.startswith("^")
    out: list[Token] = []
    used: dict[str, set[str]] = {}
    for word in template.lstrip("^").split():
        m = re.fullmatch(r"\{([A-Z]+)\}", word)
        if not m:
            out.append((word, "O"))
            continue
        slot = m.group(1)
        picked = used.setdefault(slot, set())
        while True:
            filler = SLOTS[slot](rng)
            key = " ".join(w for w, _ in filler)
            if key not in picked or slot in REPEATABLE_SLOTS:
                picked.add(key)
                break
        out.extend(filler)
    for i, (word, tag) in enumerate(out[:-1]):  # "a" / "an" before a filled-in word
        if tag == "O" and word.lower() in {"a", "an"}:
            following = out[i + 1][0].lower()
            vowel = following[0] in "aeiou" and not following.startswith(("eu", "uru", "uni", "one"))
            out[i] = (word[0] + ("n" if vowel else ""), tag)
    first, tag = out[0]
    if tag == "O":
        out[0] = (first[:1].upper() + first[1:], tag)
    if headline:
        out = [(w.upper(), t) for w, t in out]
    return out


def make_ner(rng: random.Random) -> tuple[list[list[Token]], list[list[Token]]]:
    total = NER_TRAIN_SENTENCES + NER_VALIDATION_SENTENCES
    sentences: list[list[Token]] = []
    seen: set[tuple[str, ...]] = set()
    while len(sentences) < total:
        sentence = _tokens_for(rng.choice(NER_TEMPLATES), rng)
        key = tuple(w.lower() for w, _ in sentence)
        if not MIN_SENTENCE_TOKENS <= len(sentence) <= MAX_SENTENCE_TOKENS or key in seen:
            continue
        seen.add(key)
        sentences.append(sentence)
    return sentences[NER_VALIDATION_SENTENCES:], sentences[:NER_VALIDATION_SENTENCES]


# ---------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def write_tsv(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    for text, _ in rows:
        if "\t" in text or "\n" in text or "\r" in text:
            raise ValueError(f"bad text {text!r}")
    _write(path, "text\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows))


def write_conll(path: Path, sentences: Sequence[Sequence[Token]]) -> None:
    blocks = ["".join(f"{word} {tag}\n" for word, tag in sentence) for sentence in sentences]
    _write(path, "\n".join(blocks))


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the synthetic demo data sets.")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder [default: {OUT_DIR}]")
    out = parser.parse_args().out
    train, validation = make_sentiment(random.Random(SENTIMENT_SEED))
    write_tsv(out / "sentiment" / "train.tsv", train)
    write_tsv(out / "sentiment" / "validation.tsv", validation)
    ner_train, ner_validation = make_ner(random.Random(NER_SEED))
    write_conll(out / "ner" / "train.conll", ner_train)
    write_conll(out / "ner" / "validation.conll", ner_validation)
    for name, count in (
        ("sentiment/train.tsv", len(train)),
        ("sentiment/validation.tsv", len(validation)),
        ("ner/train.conll", len(ner_train)),
        ("ner/validation.conll", len(ner_validation)),
    ):
        print(f"{out / name}: {count}")


if __name__ == "__main__":
    main()
