"""Writes a small GeoLite2-City-format database for tests: each argument is
NETWORK=LAT,LON[,COUNTRY] (or NETWORK=-,-,COUNTRY for a network placed in a country only).

usage: python3 write_mmdb.py OUT.mmdb 10.1.0.0/16=48.86,2.35,FR ...
"""
import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet

out, *entries = sys.argv[1:]
writer = MMDBWriter(ip_version=4, database_type="GeoLite2-City", languages=["en"], description="strata test")
for entry in entries:
    network, place = entry.split("=", 1)
    lat, lon, *country = place.split(",")
    record = {}
    if lat != "-":
        record["location"] = {"latitude": float(lat), "longitude": float(lon)}
    if country:
        record["country"] = {"iso_code": country[0]}
    writer.insert_network(IPSet([network]), record)
writer.to_db_file(out)
