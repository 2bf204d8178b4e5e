"""What the demo world is made of: scene categories, themes, property areas, destinations.

Pure constants (no Spark), shared by the driver and the Python workers.
"""
from __future__ import annotations

# scene category -> (theme, property area or None)
CATEGORIES: dict[str, tuple[str, str | None]] = {
    "beach": ("sea", None),
    "coast": ("sea", None),
    "open_sea": ("sea", None),
    "outdoor_pool": ("pool_spa", "pool"),
    "indoor_pool": ("pool_spa", "pool"),
    "hot_tub": ("pool_spa", None),
    "golf_course": ("nature", None),
    "ski_slope": ("snow", None),
    "snowy_mountain": ("snow", None),
    "forest": ("nature", None),
    "lake": ("nature", None),
    "vineyard": ("nature", None),
    "city_skyline": ("city", None),
    "tower": ("city", None),
    "bridge": ("city", None),
    "castle": ("heritage", None),
    "desert": ("desert", None),
    "bedroom": ("hotel", "bedroom"),
    "bathroom": ("hotel", "bathroom"),
    "restaurant": ("hotel", "restaurant"),
    "reception": ("hotel", "reception"),
    "foyer": ("hotel", "foyer"),
    "kitchen": ("hotel", "kitchen"),
    "facade": ("hotel", "facade"),
}
CATEGORY_NAMES: list[str] = list(CATEGORIES)

# scene category -> the elements its photos may show (a photo shows 1 to 3 of them, drawn
# over the scene): the demo's fine-grained tag space, as Places365 and its attributes give
# (pool + palm trees + sun loungers; mountains + chalet + gondola). An element belongs to
# the categories of one taste theme (or to the hotel interiors), never across themes.
ELEMENTS: dict[str, list[str]] = {
    "beach": ["parasol", "beach_towel", "sandcastle", "palm_tree", "surfboard"],
    "coast": ["lighthouse", "seagull", "sea_rocks", "sailboat"],
    "open_sea": ["sailboat", "yacht", "buoy", "seagull", "dolphin"],
    "outdoor_pool": ["sun_lounger", "pool_float", "potted_palm", "cabana", "pool_ladder"],
    "indoor_pool": ["pool_ladder", "towel_stack", "pool_float", "lane_rope"],
    "hot_tub": ["spa_candles", "towel_stack", "bamboo", "spa_lantern"],
    "golf_course": ["golf_flag", "golf_cart", "golfer"],
    "ski_slope": ["skier", "ski_lift", "pine_tree", "snowman", "piste_marker"],
    "snowy_mountain": ["chalet", "gondola", "pine_tree", "eagle"],
    "forest": ["deer", "mushroom", "wooden_cabin", "hiker"],
    "lake": ["rowboat", "duck", "jetty", "wooden_cabin"],
    "vineyard": ["wine_barrel", "grapes", "farmhouse", "tractor"],
    "city_skyline": ["street_lamp", "taxi", "billboard", "crane"],
    "tower": ["street_lamp", "cafe_umbrella", "pigeon", "tour_bus"],
    "bridge": ["river_boat", "street_lamp", "tram", "pigeon"],
    "castle": ["banner", "drawbridge", "knight_statue", "cannon", "swan"],
    "desert": ["camel", "cactus", "bedouin_tent", "date_palm", "dune_buggy", "minaret"],
    "bedroom": ["bedside_lamp", "painting", "wardrobe", "armchair"],
    "bathroom": ["bathrobe", "bath_towel", "soap_dish", "shower_head"],
    "restaurant": ["chandelier", "wine_glass", "dinner_candle", "waiter"],
    "reception": ["desk_bell", "key_rack", "wall_clock", "receptionist"],
    "foyer": ["sofa", "grand_piano", "flower_vase", "luggage_cart"],
    "kitchen": ["fridge", "kettle", "microwave", "fruit_bowl"],
    "facade": ["balcony", "awning", "doorman", "parked_car", "hotel_flag"],
}
ELEMENT_NAMES: list[str] = list(dict.fromkeys(e for pool in ELEMENTS.values() for e in pool))
# the demo scene model's tags: the scene categories, then the elements (a multi-label model)
TAG_NAMES: list[str] = CATEGORY_NAMES + ELEMENT_NAMES


def sample_elements(category: str, rng) -> list[str]:
    """The elements one photo of ``category`` shows: 1 to 3 of its pool, in drawing order."""
    pool = ELEMENTS[category]
    k = int(rng.integers(1, min(3, len(pool)) + 1))
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
AREAS: list[str] = ["bedroom", "bathroom", "pool", "restaurant", "facade", "reception", "foyer", "kitchen"]
# themes a traveller can like (hotel interiors are neutral)
TASTE_THEMES: list[str] = ["sea", "pool_spa", "snow", "nature", "city", "heritage", "desert"]

# destination type -> weights over the outdoor categories its hotels show
DESTINATION_TYPES: dict[str, dict[str, float]] = {
    "seaside": {"beach": 4, "coast": 3, "open_sea": 2, "outdoor_pool": 3, "hot_tub": 1},
    "mountain": {"ski_slope": 4, "snowy_mountain": 4, "forest": 2, "lake": 1, "hot_tub": 2, "indoor_pool": 1},
    "city": {"city_skyline": 4, "tower": 3, "bridge": 3, "castle": 1, "indoor_pool": 1},
    "countryside": {"vineyard": 3, "forest": 2, "lake": 3, "golf_course": 3, "castle": 2, "outdoor_pool": 1},
    "spa": {"hot_tub": 3, "indoor_pool": 4, "outdoor_pool": 2, "forest": 1, "lake": 1},
    "desert": {"desert": 5, "outdoor_pool": 3, "hot_tub": 1},
}
INTERIOR_WEIGHTS: dict[str, float] = {"bedroom": 4, "bathroom": 3, "restaurant": 2, "reception": 1.5,
                                      "foyer": 1, "kitchen": 1, "facade": 2}

# (destination, country, region, destination type)
DESTINATIONS: list[tuple[str, str, str, str]] = [
    ("Nice", "France", "south", "seaside"), ("Biarritz", "France", "west", "seaside"),
    ("Ajaccio", "France", "south", "seaside"), ("Algarve", "Portugal", "south", "seaside"),
    ("Mykonos", "Greece", "south", "seaside"), ("Sardinia", "Italy", "south", "seaside"),
    ("Mallorca", "Spain", "south", "seaside"), ("Chamonix", "France", "east", "mountain"),
    ("Zermatt", "Switzerland", "east", "mountain"), ("Dolomites", "Italy", "east", "mountain"),
    ("Tyrol", "Austria", "east", "mountain"), ("Paris", "France", "north", "city"),
    ("Rome", "Italy", "south", "city"), ("Barcelona", "Spain", "south", "city"),
    ("London", "United Kingdom", "north", "city"), ("Prague", "Czechia", "east", "city"),
    ("Lisbon", "Portugal", "west", "city"), ("Bordeaux", "France", "west", "countryside"),
    ("Tuscany", "Italy", "south", "countryside"), ("Loire", "France", "west", "countryside"),
    ("Douro", "Portugal", "west", "countryside"), ("Baden-Baden", "Germany", "east", "spa"),
    ("Evian", "France", "east", "spa"), ("Budapest", "Hungary", "east", "spa"),
    ("Marrakech", "Morocco", "south", "desert"), ("Dubai", "United Arab Emirates", "south", "desert"),
]
HOME_REGIONS: list[str] = ["north", "south", "east", "west"]

# description words per category (what a copywriter would say about such a photo)
CATEGORY_WORDS: dict[str, list[str]] = {
    "beach": ["beach", "sand", "sunbathing"], "coast": ["coastline", "cliffs", "sea view"],
    "open_sea": ["sea view", "sailing"], "outdoor_pool": ["pool", "sun loungers"],
    "indoor_pool": ["indoor pool", "swimming"], "hot_tub": ["jacuzzi", "spa"],
    "golf_course": ["golf", "greens"], "ski_slope": ["ski", "slopes"],
    "snowy_mountain": ["mountain", "snow", "alpine"], "forest": ["forest", "hiking"],
    "lake": ["lake", "lakeside"], "vineyard": ["vineyards", "wine tasting"],
    "city_skyline": ["city centre", "skyline"], "tower": ["landmarks", "sightseeing"],
    "bridge": ["riverside", "sightseeing"], "castle": ["castle", "historic"],
    "desert": ["desert", "dunes"], "restaurant": ["gourmet restaurant"], "bathroom": ["marble bathroom"],
    "bedroom": ["spacious rooms"], "kitchen": ["kitchenette"], "reception": ["24h reception"],
    "foyer": ["elegant lobby"], "facade": ["charming hotel"],
}
HOTEL_PREFIX = ["Grand", "Royal", "Le", "Villa", "Casa", "Hotel", "Palazzo", "Chalet", "Residence", "Domaine"]
HOTEL_ROOT = ["Azur", "Miramar", "Belvedere", "Alba", "Sole", "Lumiere", "Edelweiss", "Oasis", "Bellevue",
              "Rivage", "Cedre", "Marina", "Aurora", "Horizon", "Serena", "Palmeraie", "Montana", "Olivier"]
