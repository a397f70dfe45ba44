"""Synthetic data sets of any size, for benchmarks only: a shop's interactions with a long tail, and item vectors.

:func:`generate` writes ``interactions.csv[.gz]`` (``session_id, item_id, timestamp``) and ``items.csv[.gz]``
(``item_id, title, category``) into a folder: the format a user's own data set has (``core.data``), so
``python -m core prepare --dataset FOLDER`` (or ``--interactions … --items …``) loads it like any other. The
data are made to look like a retailer's log, not to be one:

* **Popularity**: item ``i``'s weight is ``(rank_i + offset)^-exponent`` over a random ranking of the items
  (Zipf–Mandelbrot; exponent 1 and offset 10 by default), so a few items take much of the traffic and most are
  rare (Zipf 1949; the long tail of retail sales: Anderson 2006). Items nobody draws are not in the
  interactions, so the loaded catalog is somewhat smaller than ``n_items`` (:class:`SynthReport` says how much).
* **Session lengths**: ``2 + floor(LogNormal(mu, sigma))`` clipped at ``max_length``, ``mu`` set so the mean is
  ``mean_length``. The defaults (mean 9, sigma 1, at most 200) follow Amazon Beauty 5-core's sessions (mean 8.9,
  median 6, 99th percentile 43, longest 204), less its minimum of 5 (a 5-core filter's artefact).
* **Signal**: items belong to categories (department > product > theme); a session picks 1–3 *related*
  categories (same department) and walks through them in turn, drawing ``in_category`` of its items from the
  current category (by popularity inside it) and the rest from the whole catalog. Since the session's category
  is chosen in proportion to its total weight, each item's share of all draws stays its Zipf weight.
* **Titles**: brand + two adjectives + the category's product noun + its theme + a size, from small built-in
  word lists ("Veluna Gentle Matte Serum, Travel Edition, 50 ml"); items of one category share the noun and
  theme words, a department's items share brands, so text embeddings have structure. Titles may repeat
  (:attr:`SynthReport.repeated_titles` counts the items whose title another item has).
* **Time**: sessions start as a Poisson process over ``span_days`` from ``start_time``; each event follows the
  previous one by 1 s + an exponential gap (mean ``mean_gap_seconds``), so timestamps increase within a session.

Everything is vectorised numpy/pyarrow, sessions are made and written in blocks (memory does not grow with
``n_sessions``), and a seed gives the same files byte for byte. :func:`clustered_vectors` makes item vectors
with cluster structure for index benchmarks.
"""

from __future__ import annotations

import gzip
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from core.common import ConfigError, Progress
from core.storage import CACHE_DIR

SESSION_BLOCK = 200_000  # sessions made and written at a time (~1.8M events, ~150 MB while in flight)
ITEM_BLOCK = 250_000  # items titled and written at a time
REDRAWS = 4  # rounds of drawing again the items a session already has (a few repeats remain in tiny categories)

# ---------------------------------------------------------------------------------------- word lists

DEPARTMENTS: tuple[tuple[str, str, tuple[str, ...], tuple[int, ...]], ...] = (
    # name, size unit, product nouns, sizes
    ("Skin Care", "ml", ("Serum", "Moisturizer", "Cleanser", "Toner", "Face Mask", "Eye Cream", "Sunscreen",
                         "Exfoliator", "Face Oil", "Night Cream"), (15, 30, 50, 75, 100, 150, 200)),
    ("Hair Care", "ml", ("Shampoo", "Conditioner", "Hair Mask", "Hair Oil", "Styling Gel", "Hair Spray",
                         "Dry Shampoo", "Leave-In Cream", "Scalp Tonic", "Curl Cream"), (50, 100, 250, 300, 500)),
    ("Makeup", "g", ("Lipstick", "Mascara", "Foundation", "Eyeliner", "Blush", "Concealer", "Eyeshadow Palette",
                     "Lip Gloss", "Bronzer", "Setting Powder"), (2, 4, 6, 8, 10, 12, 15)),
    ("Fragrance", "ml", ("Eau de Parfum", "Eau de Toilette", "Body Mist", "Cologne", "Perfume Oil",
                         "Solid Perfume", "Room Spray", "Scented Candle", "Diffuser Oil", "Aftershave"),
     (10, 30, 50, 75, 100)),
    ("Bath & Body", "ml", ("Body Wash", "Body Lotion", "Bath Salts", "Hand Cream", "Body Scrub", "Bubble Bath",
                           "Deodorant", "Body Butter", "Soap Bar", "Foot Cream"), (75, 150, 250, 400, 500)),
    ("Nails", "ml", ("Nail Polish", "Top Coat", "Base Coat", "Cuticle Oil", "Nail File", "Gel Polish",
                     "Nail Strengthener", "Polish Remover", "Nail Art Kit", "Nail Clipper"), (5, 8, 10, 12, 15)),
    ("Kitchen", "pc", ("Frying Pan", "Chef Knife", "Cutting Board", "Mixing Bowl", "Saucepan", "Spatula",
                       "Baking Sheet", "Measuring Cups", "Colander", "Stock Pot"), (1, 2, 3, 4, 5, 6)),
    ("Coffee & Tea", "g", ("Espresso Beans", "Ground Coffee", "Green Tea", "Herbal Tea", "Coffee Grinder",
                           "French Press", "Tea Kettle", "Pour-Over Dripper", "Matcha Powder", "Cold Brew Maker"),
     (100, 250, 500, 1000)),
    ("Garden", "pc", ("Garden Hose", "Pruning Shears", "Plant Pot", "Seed Mix", "Watering Can", "Trowel",
                      "Garden Gloves", "Bird Feeder", "Compost Bin", "Raised Bed"), (1, 2, 3, 5, 10)),
    ("Pet Supplies", "pc", ("Dog Leash", "Cat Toy", "Pet Bed", "Chew Toy", "Litter Box", "Food Bowl",
                            "Grooming Brush", "Pet Shampoo", "Dog Collar", "Scratching Post"), (1, 2, 3, 4, 6)),
    ("Sports", "pc", ("Yoga Mat", "Dumbbell Set", "Resistance Band", "Water Bottle", "Jump Rope", "Foam Roller",
                      "Running Belt", "Gym Bag", "Kettlebell", "Exercise Ball"), (1, 2, 3, 4, 5)),
    ("Office", "pc", ("Notebook", "Gel Pen", "Desk Organizer", "Stapler", "Sticky Notes", "Highlighter",
                      "Paper Clips", "File Folder", "Desk Lamp", "Planner"), (1, 3, 5, 10, 12, 24)),
    ("Toys", "pc", ("Building Blocks", "Puzzle", "Plush Toy", "Toy Car", "Board Game", "Doll", "Art Set",
                    "Train Set", "Kite", "Science Kit"), (1, 2, 3, 4, 6)),
    ("Audio", "pc", ("Headphones", "Earbuds", "Bluetooth Speaker", "Soundbar", "Microphone", "Turntable",
                     "Audio Cable", "Headphone Stand", "Amplifier", "Radio"), (1, 2)),
    ("Baby", "pc", ("Baby Bottle", "Pacifier", "Diaper Cream", "Baby Wipes", "Teether", "Bib", "Baby Lotion",
                    "Swaddle Blanket", "Sippy Cup", "Baby Shampoo"), (1, 2, 3, 4, 6, 12)),
    ("Home Decor", "pc", ("Throw Pillow", "Wall Art", "Vase", "Picture Frame", "Table Lamp", "Area Rug",
                          "Wall Clock", "Curtains", "Mirror", "Storage Basket"), (1, 2, 3, 4)),
)
THEMES = ("Travel Edition", "Organic", "Professional", "for Kids", "Vintage", "Eco", "Deluxe", "Sensitive",
          "Classic", "Limited Edition", "Sport", "Mini", "Family Size", "Unscented", "Vegan", "Premium",
          "Everyday", "Gift Set", "Ultra", "Natural", "Refill", "Studio", "Outdoor", "Compact", "Holiday",
          "Signature", "Essentials", "Advanced", "Pure", "Original")
ADJECTIVES = ("Gentle", "Matte", "Hydrating", "Radiant", "Soft", "Bold", "Fresh", "Silky", "Smooth", "Light",
              "Rich", "Bright", "Deep", "Calm", "Cool", "Warm", "Sleek", "Sturdy", "Compact", "Quick", "Soothing",
              "Daily", "Nourishing", "Lasting", "Velvet", "Crystal", "Golden", "Silver", "Classic", "Modern",
              "Rustic", "Handmade", "Heavy-Duty", "Ergonomic", "Foldable", "Portable", "Wireless", "Scented",
              "Refreshing", "Balancing", "Firming", "Clarifying", "Volumizing", "Shiny", "Waterproof",
              "Long-Lasting", "Lightweight", "Non-Stick", "Stainless", "Bamboo", "Ceramic", "Cotton", "Wooden",
              "Glass", "Recycled", "Natural", "Herbal", "Citrus", "Floral", "Minty", "Spiced", "Midnight", "Ocean",
              "Sunny")
BRAND_HEADS = ("Vel", "Lu", "Mor", "Ari", "Zen", "Cal", "Nova", "Ter", "Sol", "Bel", "Kin", "Fio", "Orla", "Dax",
               "Mira", "Tal", "Rho", "Eli", "Quin", "Sera", "Vio", "Ama", "Bri", "Cor", "Ise", "Jun", "Lyr", "Nim",
               "Pax", "Ves")
BRAND_TAILS = ("una", "ora", "ix", "elle", "ano", "ette", "ora", "ia", "on", "is", "ara", "ent", "ova", "yn",
               "ique", "ella", "o", "ea", "um", "ure", "ix Labs", "& Co", "ana", "ero", "ine", "ova Home", "ist",
               "a Studio", "ova Pro", "eum")
BRANDS_PER_DEPARTMENT = 60


# ---------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`generate` makes; every field is checked (:class:`ConfigError` for a bad one)."""

    n_items: int
    n_sessions: int
    seed: int = 0
    popularity_exponent: float = 1.0  # Zipf's exponent: ~1 for sales and clicks
    popularity_offset: float = 10.0  # Mandelbrot's shift: flattens the very head (the top item ~0.1% at 1M items)
    mean_length: float = 9.0  # items a session; Amazon Beauty 5-core: 8.9
    length_sigma: float = 1.0  # log-normal shape: Beauty-like tail (median ~6, 99th percentile ~45)
    max_length: int = 200  # Beauty's longest session: 204
    n_categories: int | None = None  # None: 2·√n_items (2,000 at 1M items, ~500 items each)
    in_category: float = 0.85  # share of a session's items drawn from its current category
    start_time: int = 1_577_836_800  # 2020-01-01 00:00 UTC, Unix seconds
    span_days: float = 730.0  # sessions start over two years
    mean_gap_seconds: float = 90.0  # between a session's events (plus 1 s, so time strictly increases)
    compress: bool = False  # gzip (level 1): 3× smaller; writing and loading took the same time (100k items)

    def __post_init__(self) -> None:
        checks = [(self.n_items >= 1, "n_items must be at least 1"),
                  (self.n_sessions >= 1, "n_sessions must be at least 1"),
                  (self.popularity_exponent >= 0, "popularity_exponent must be 0 or more"),
                  (self.popularity_offset >= 0, "popularity_offset must be 0 or more"),
                  (self.max_length >= 2, "max_length must be at least 2"),
                  (2 < self.mean_length <= self.max_length, "mean_length must be above 2 and at most max_length"),
                  (self.length_sigma > 0, "length_sigma must be positive"),
                  (self.n_categories is None or 1 <= self.n_categories <= self.n_items,
                   "n_categories must be 1..n_items"),
                  (0 <= self.in_category <= 1, "in_category must be in [0, 1]"),
                  (self.span_days > 0 and self.mean_gap_seconds >= 0, "span_days must be positive and "
                                                                        "mean_gap_seconds 0 or more")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"synthetic data: {message}")

    @property
    def categories(self) -> int:
        return self.n_categories or max(1, min(self.n_items, round(2 * math.sqrt(self.n_items))))


@dataclass(frozen=True)
class SynthReport:
    """What :func:`generate` wrote and measured."""

    interactions_path: Path
    items_path: Path
    n_items: int
    n_sessions: int
    n_interactions: int
    items_with_interactions: int  # the catalog the loader will keep (items nobody drew are left out)
    top_percent_share: float  # share of all interactions on the top 1% of items
    mean_length: float
    repeated_titles: int  # items whose title another item has too
    n_categories: int
    seconds: float

    def lines(self) -> list[str]:
        return [f"{self.n_items:,} items in {self.n_categories:,} categories, {self.n_sessions:,} sessions, "
                f"{self.n_interactions:,} interactions (mean session length {self.mean_length:.2f}) in "
                f"{self.seconds:.1f} s",
                f"items with an interaction: {self.items_with_interactions:,} "
                f"({self.items_with_interactions / self.n_items:.1%}); the top 1% of items hold "
                f"{self.top_percent_share:.1%} of the interactions; {self.repeated_titles:,} items share their "
                "title with another",
                f"-> {self.interactions_path}", f"-> {self.items_path}"]


# ---------------------------------------------------------------------------------------- the catalog


@dataclass(frozen=True)
class _Catalog:
    weight: np.ndarray  # float64 (n_items,): each item's popularity weight
    category: np.ndarray  # int64 (n_items,)
    by_category: np.ndarray  # item indices sorted by category (stable)
    cumulative: np.ndarray  # cumulative weights of by_category
    category_start: np.ndarray  # (n_categories,) first position in by_category
    category_end: np.ndarray  # one past the last
    category_cumulative: np.ndarray  # cumulative category masses (for drawing a session's first category)


def _catalog(config: SynthConfig) -> _Catalog:
    rng = np.random.default_rng([config.seed, 0])
    n, n_categories = config.n_items, config.categories
    rank = rng.permutation(n)
    weight = (rank + 1.0 + config.popularity_offset) ** -config.popularity_exponent
    # every category gets at least one item when there are enough items, the rest at random
    category = np.concatenate([np.arange(min(n, n_categories)),
                               rng.integers(0, n_categories, max(0, n - n_categories))])
    rng.shuffle(category)
    by_category = np.argsort(category, kind="stable")
    cumulative = np.cumsum(weight[by_category])
    counts = np.bincount(category, minlength=n_categories)
    category_end = np.cumsum(counts)
    category_start = category_end - counts
    mass = np.bincount(category, weights=weight, minlength=n_categories)
    return _Catalog(weight, category, by_category, cumulative, category_start, category_end, np.cumsum(mass))


def _draw_in_categories(catalog: _Catalog, categories: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One item per entry of ``categories``, by popularity inside it (inverse-CDF over cumulative weights)."""
    start, end = catalog.category_start[categories], catalog.category_end[categories]
    low = np.where(start > 0, catalog.cumulative[np.maximum(start - 1, 0)], 0.0)
    high = catalog.cumulative[end - 1]
    position = np.searchsorted(catalog.cumulative, low + rng.random(len(categories)) * (high - low), side="right")
    return catalog.by_category[np.clip(position, start, end - 1)]


def _draw_anywhere(catalog: _Catalog, size: int, rng: np.random.Generator) -> np.ndarray:
    total = catalog.cumulative[-1]
    position = np.searchsorted(catalog.cumulative, rng.random(size) * total, side="right")
    return catalog.by_category[np.minimum(position, len(catalog.by_category) - 1)]


def _titles(config: SynthConfig, catalog: _Catalog, start: int, stop: int) -> tuple[pa.Array, pa.Array]:
    """Titles and category names of items ``start:stop`` (pyarrow string arrays)."""
    rng = np.random.default_rng([config.seed, 2, start])
    n_departments, n_nouns = len(DEPARTMENTS), len(DEPARTMENTS[0][2])
    category = catalog.category[start:stop]
    department = category % n_departments
    noun = (category // n_departments) % n_nouns
    lap_size = n_departments * n_nouns
    # every (department, noun) pair takes each theme once in the first 4,800 categories, starting at a different one
    theme = (category // lap_size + 7 * (category % lap_size)) % len(THEMES)
    lap = category // (lap_size * len(THEMES))  # beyond 4,800 categories: "… 2", "… 3"
    size = len(category)
    brands = np.array([h + t for h in BRAND_HEADS for t in BRAND_TAILS], dtype=object)
    brand = (department * 53 + rng.integers(0, BRANDS_PER_DEPARTMENT, size)) % len(brands)
    first = rng.integers(0, len(ADJECTIVES), size)
    second = (first + rng.integers(1, len(ADJECTIVES), size)) % len(ADJECTIVES)  # never the same adjective twice
    nouns = np.array([n for _, _, ns, _ in DEPARTMENTS for n in ns], dtype=object)
    noun_flat = department * n_nouns + noun
    sizes = np.array([f"{s} {unit}" for _, unit, _, ss in DEPARTMENTS for s in ss], dtype=object)
    size_offset = np.cumsum([0] + [len(ss) for *_, ss in DEPARTMENTS])
    size_count = np.diff(size_offset)
    size_pick = size_offset[department] + (rng.random(size) * size_count[department]).astype(np.int64)
    adjectives = np.array(ADJECTIVES, dtype=object)
    themes = np.array(THEMES, dtype=object)
    lap_text = np.where(lap > 0, np.char.add(" ", (lap + 1).astype(str)).astype(object), "")

    def words(table: np.ndarray, picks: np.ndarray) -> pa.Array:
        return pc.take(pa.array(table, pa.string()), pa.array(picks))

    title = pc.binary_join_element_wise(words(brands, brand), words(adjectives, first), words(adjectives, second),
                                        words(nouns, noun_flat), " ")
    title = pc.binary_join_element_wise(title, words(themes, theme), words(sizes, size_pick), ", ")
    departments = np.array([d for d, *_ in DEPARTMENTS], dtype=object)
    name = pc.binary_join_element_wise(words(departments, department), words(nouns, noun_flat),
                                       words(themes, theme), " > ")
    name = pc.binary_join_element_wise(name, pa.array(lap_text.tolist(), pa.string()), "")
    return title, name


# ---------------------------------------------------------------------------------------- sessions


def _lengths(config: SynthConfig, size: int, rng: np.random.Generator) -> np.ndarray:
    # E[floor(L)] ≈ E[L] - 1/2 and E[L] = exp(mu + sigma²/2) for L ~ LogNormal(mu, sigma)
    mu = math.log(max(config.mean_length - 1.5, 0.1)) - config.length_sigma ** 2 / 2
    tail = np.floor(rng.lognormal(mu, config.length_sigma, size)).astype(np.int64)
    return np.minimum(2 + tail, config.max_length)


def _sessions(config: SynthConfig, catalog: _Catalog, block: int, first: int, size: int,
              clock: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Block ``block`` of sessions (``first`` .. ``first + size - 1``): per event its session number, item and
    timestamp; and the start time of the next block's first session."""
    rng = np.random.default_rng([config.seed, 1, block])
    lengths = _lengths(config, size, rng)
    total = int(lengths.sum())
    session = np.repeat(np.arange(first, first + size, dtype=np.int64), lengths)
    offsets = np.cumsum(lengths) - lengths
    position = np.arange(total, dtype=np.int64) - np.repeat(offsets, lengths)
    # related categories: the first by mass, the others in its department (categories c, c + 16·j share one)
    primary = np.searchsorted(catalog.category_cumulative, rng.random(size) * catalog.category_cumulative[-1],
                              side="right").clip(0, config.categories - 1)
    n_related = 1 + (rng.random(size) < 0.5).astype(np.int64) + (rng.random(size) < 0.15).astype(np.int64)
    step = len(DEPARTMENTS) * rng.integers(1, 4, (size, 2))
    related = np.column_stack([primary, (primary[:, None] + step) % config.categories])
    empty = catalog.category_end[related] == catalog.category_start[related]
    related = np.where(empty, primary[:, None], related)
    phase = np.minimum(position * np.repeat(n_related, lengths) // np.repeat(lengths, lengths), 2)
    event_category = related[np.repeat(np.arange(size), lengths), phase]
    items = _draw_in_categories(catalog, event_category, rng)
    anywhere = rng.random(total) >= config.in_category
    items[anywhere] = _draw_anywhere(catalog, int(anywhere.sum()), rng)
    for _ in range(REDRAWS):  # an item already in its session is drawn again: sessions seldom repeat an item
        order = np.lexsort((position, items, session))
        repeat = (session[order][1:] == session[order][:-1]) & (items[order][1:] == items[order][:-1])
        again = order[1:][repeat]
        if not len(again):
            break
        items[again] = _draw_in_categories(catalog, event_category[again], rng)
    # start times: a Poisson process; events 1 s + Exp(mean gap) apart
    mean_between = config.span_days * 86_400 / config.n_sessions
    starts = clock + np.cumsum(rng.exponential(mean_between, size))
    gaps = 1.0 + np.floor(rng.exponential(config.mean_gap_seconds, total))
    gaps[offsets] = 0.0
    cumulative = np.cumsum(gaps)
    within = cumulative - np.repeat(cumulative[offsets], lengths)
    timestamps = (config.start_time + np.floor(np.repeat(starts, lengths)) + within).astype(np.int64)
    return session, items, timestamps, float(starts[-1])


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


# ---------------------------------------------------------------------------------------- writing


class _AtomicCsv:
    """A CSV written through pyarrow to a temporary file beside ``path``, renamed into place when complete."""

    def __init__(self, path: Path, compress: bool, quoting: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(handle)
        self.tmp = Path(tmp)
        self.stream: Any = gzip.open(self.tmp, "wb", compresslevel=1) if compress else open(self.tmp, "wb")
        self.options = pacsv.WriteOptions(quoting_style=quoting)
        self.writer: pacsv.CSVWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            self.writer = pacsv.CSVWriter(self.stream, table.schema, write_options=self.options)
        self.writer.write_table(table)

    def finish(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.stream.close()
        os.chmod(self.tmp, 0o644)  # mkstemp's 0600 would keep a shared data set from others
        os.replace(self.tmp, self.path)

    def abandon(self) -> None:
        self.stream.close()
        self.tmp.unlink(missing_ok=True)


def default_folder(config: SynthConfig) -> Path:
    """``cache/synth/<items>-items-<sessions>-sessions-seed<seed>``: where ``generate`` writes without ``out``."""
    return CACHE_DIR / "synth" / f"{config.n_items}-items-{config.n_sessions}-sessions-seed{config.seed}"


def generate(n_items: int, n_sessions: int, seed: int = 0, out: Path | None = None,
             progress: Progress | None = None, **options: object) -> SynthReport:
    """Write a synthetic data set of ``n_items`` items and ``n_sessions`` sessions into ``out`` (default:
    :func:`default_folder`) as ``interactions.csv`` and ``items.csv`` (``.csv.gz`` with ``compress=True``);
    returns a :class:`SynthReport`. ``options`` are :class:`SynthConfig` fields (module docstring). The same
    arguments give the same bytes. Raises :class:`ConfigError` for an unknown or out-of-range option.

    Cost measured on this 2-core machine (``python -m core synth``): see the README's scale section.
    """
    fields = set(SynthConfig.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f"synthetic data: unknown option {unknown[0]!r}; options: {', '.join(sorted(fields))}")
    config = SynthConfig(n_items=n_items, n_sessions=n_sessions, seed=seed, **options)  # type: ignore[arg-type]
    return _generate(config, Path(out) if out is not None else default_folder(config), progress)


def _generate(config: SynthConfig, folder: Path, progress: Progress | None) -> SynthReport:
    started = time.perf_counter()
    suffix = ".csv.gz" if config.compress else ".csv"
    catalog = _catalog(config)
    n_blocks = math.ceil(config.n_sessions / SESSION_BLOCK)
    item_blocks = math.ceil(config.n_items / ITEM_BLOCK)
    steps = n_blocks + item_blocks
    say: Callable[[int, str], None] = (lambda done, message: progress(done, steps, message)) if progress \
        else (lambda done, message: None)
    counts = np.zeros(config.n_items, dtype=np.int64)
    item_width, session_width = len(str(config.n_items - 1)), len(str(config.n_sessions - 1))
    interactions = _AtomicCsv(folder / f"interactions{suffix}", config.compress, "none")
    try:
        clock, n_events = 0.0, 0
        for block in range(n_blocks):
            first = block * SESSION_BLOCK
            size = min(SESSION_BLOCK, config.n_sessions - first)
            session, items, timestamps, clock = _sessions(config, catalog, block, first, size, clock)
            counts += np.bincount(items, minlength=config.n_items)
            n_events += len(items)
            interactions.write(pa.table({"session_id": _ids("s", session, session_width),
                                         "item_id": _ids("i", items, item_width),
                                         "timestamp": pa.array(timestamps)}))
            say(block + 1, f"sessions {first + size:,}/{config.n_sessions:,}")
        interactions.finish()
    except BaseException:
        interactions.abandon()
        raise
    titles_file = _AtomicCsv(folder / f"items{suffix}", config.compress, "needed")
    titles: list[pa.Array] = []
    try:
        for block in range(item_blocks):
            start, stop = block * ITEM_BLOCK, min((block + 1) * ITEM_BLOCK, config.n_items)
            title, category = _titles(config, catalog, start, stop)
            titles.append(title)
            titles_file.write(pa.table({"item_id": _ids("i", np.arange(start, stop), item_width), "title": title,
                                        "category": category}))
            say(n_blocks + block + 1, f"items {stop:,}/{config.n_items:,}")
        titles_file.finish()
    except BaseException:
        titles_file.abandon()
        raise
    multiplicity = pc.value_counts(pa.chunked_array(titles)).field("counts").to_numpy()
    top = np.sort(counts)[::-1][:max(1, config.n_items // 100)]
    return SynthReport(interactions_path=folder / f"interactions{suffix}", items_path=folder / f"items{suffix}",
                       n_items=config.n_items, n_sessions=config.n_sessions, n_interactions=n_events,
                       items_with_interactions=int((counts > 0).sum()),
                       top_percent_share=float(top.sum() / max(1, n_events)), mean_length=n_events / config.n_sessions,
                       repeated_titles=int(multiplicity[multiplicity > 1].sum()), n_categories=config.categories,
                       seconds=time.perf_counter() - started)


# ---------------------------------------------------------------------------------------- item vectors


def clustered_vectors(n_items: int, dim: int, n_clusters: int | None = None, spread: float = 1.0, seed: int = 0,
                      block: int = 100_000) -> np.ndarray:
    """Unit vectors (n_items, dim) float32 in clusters, a stand-in for text embeddings in index benchmarks.

    Two levels, as topics and sub-topics: ``n_clusters`` (default √n) random centres, each with 8 sub-centres at
    half its norm's distance; an item is ``centre + 0.5·sub-centre + spread·noise`` (noise of norm ~1),
    normalised. ``spread=1`` gives items of one sub-cluster cosines ~0.4–0.6 and nearest neighbours ~0.6, the
    range of sentence-embedding neighbours; smaller spreads make the search easier. Made in blocks, so memory is
    the result plus ``block × dim`` floats. Raises :class:`ConfigError` for sizes below 1 or a negative spread.
    """
    if n_items < 1 or dim < 1 or spread < 0 or (n_clusters is not None and n_clusters < 1):
        raise ConfigError(f"clustered vectors need n_items, dim, n_clusters >= 1 and spread >= 0; got {n_items}, "
                          f"{dim}, {n_clusters}, {spread}")
    rng = np.random.default_rng([seed, 3])
    n_clusters = n_clusters or max(1, round(math.sqrt(n_items)))
    centres = rng.standard_normal((n_clusters, dim)) / math.sqrt(dim)
    subs = rng.standard_normal((n_clusters, 8, dim)) / math.sqrt(dim)
    out = np.empty((n_items, dim), dtype=np.float32)
    for start in range(0, n_items, block):
        size = min(block, n_items - start)
        cluster = rng.integers(0, n_clusters, size)
        sub = rng.integers(0, 8, size)
        noise = rng.standard_normal((size, dim)) / math.sqrt(dim)
        points = centres[cluster] + 0.5 * subs[cluster, sub] + spread * noise
        out[start:start + size] = points / np.linalg.norm(points, axis=1, keepdims=True)
    return out
