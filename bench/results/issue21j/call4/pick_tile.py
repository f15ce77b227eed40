import json, sys
rows = json.load(open(sys.argv[1]))
tot = {}
for r in rows:
    if r["variant"].startswith("cur ") and r.get("exact") and r["shape"].split()[0] in ("d12", "d48"):
        tot.setdefault(r["variant"], []).append(r["ms"])
full = {v: sum(ms) for v, ms in tot.items() if len(ms) == 6}
for v, s in sorted(full.items(), key=lambda kv: kv[1]):
    print(f"# {v}: {s:.4f} ms over the six shapes", file=sys.stderr)
best = min(full, key=full.get)
bm, bn = best.split()[1].split("x"); w = best.split()[2][1:]
print(f"{bm},{bn},{w}")
