#!/usr/bin/env bash
# The ERP modules under load (docs/performance.md, "ERP modules"): a stock issue with and
# without Accounting enabled (the event handler's cost), and the trial balance over
# 100,000 journal lines. Loopback only, bounded: 10 s per wrk run.
#
#   cargo build --release -p eerp-platform --bin eerp
#   tests/bench/erp-modules.sh            # needs wrk, psql and PostgreSQL on 127.0.0.1:5432
set -euo pipefail
cd "$(dirname "$0")/../.."

PORT=${PORT:-18090}
DB=eerp_erp_bench_$$
STATE=$(mktemp -d)
chmod 755 "$STATE"
URL=http://127.0.0.1:$PORT
PG=postgres://postgres@127.0.0.1:5432
psql -q "$PG/postgres" -c "CREATE DATABASE $DB"
RUST_LOG=warn target/release/eerp dev --port "$PORT" --state-dir "$STATE" \
    --database-url "$PG/$DB" > "$STATE/dev.log" 2>&1 &
SERVER=$!
trap 'kill -INT $SERVER; wait $SERVER 2>/dev/null; psql -q "$PG/postgres" -c "DROP DATABASE $DB WITH (FORCE)"; rm -rf "$STATE"' EXIT
for _ in $(seq 100); do curl -sf "$URL/livez" > /dev/null && break; sleep 0.2; done

eerp() { target/release/eerp --url "$URL" "$@" --token "$(target/release/eerp token --state-dir "$STATE")"; }
tenant() {
    eerp tenant create "$1" --modules "$2" > /dev/null
    eerp limits "$1" requests_per_second=1000000 burst=1000000 > /dev/null
    target/release/eerp token --state-dir "$STATE" --tenant "$1"
}
call() { curl -s -X "$1" "$URL/api/v1$2" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}; }
id() { sed -E 's/^\{"id":"([^"]+)".*/\1/'; }

# 32 items in one location, 1,000,000 of each on hand, so issues spread over 32 balance
# rows as a real warehouse's would (one hot row serialises every issue of it).
stock_up() {
    local wh loc item
    wh=$(call POST /inventory/warehouses '{"code":"MAIN","name":"Main"}' | id)
    loc=$(call POST /inventory/locations "{\"warehouse_id\":\"$wh\",\"code\":\"A\",\"name\":\"A\"}" | id)
    echo "bodies = {}" > "$STATE/issue.lua"
    for n in $(seq 32); do
        item=$(call POST /inventory/items "{\"sku\":\"SKU-$n\",\"name\":\"Item $n\"}" | id)
        call POST /inventory/moves "{\"kind\":\"receipt\",\"item_id\":\"$item\",\"location_id\":\"$loc\",\"qty\":\"1000000\",\"rate\":\"1.25\"}" > /dev/null
        echo "bodies[$n] = '{\"kind\":\"issue\",\"item_id\":\"$item\",\"location_id\":\"$loc\",\"qty\":\"1\"}'" >> "$STATE/issue.lua"
    done
    cat >> "$STATE/issue.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
counter = 0
request = function()
    counter = counter + 1
    return wrk.format(nil, nil, nil, bodies[(counter % 32) + 1])
end
LUA
}

run() { wrk -t2 -c16 -d10s --latency "$@" | grep -E "Requests/sec|^ +(50|99)%|Non-2xx"; }

for pair in "stockonly inventory" "withbooks inventory,accounting"; do
    set -- $pair
    TOKEN=$(tenant "$1" "$2")
    stock_up
    echo "== stock issue, modules: $2"
    run -s "$STATE/issue.lua" -H "authorization: Bearer $TOKEN" "$URL/api/v1/inventory/moves"
done

# 50,000 two-line entries over 40 accounts in a year: 100,000 lines, written with SQL
# straight into the tenant's schema (seeding only; the report reads them over HTTP).
TOKEN=$(tenant ledger accounting)
JOURNAL=$(call POST /accounting/journals '{"code":"GEN","name":"General"}' | id)
for n in $(seq 40); do
    call POST /accounting/accounts "{\"code\":\"$((1000 + n))\",\"name\":\"Account $n\",\"type\":\"asset\"}" > /dev/null
done
psql -q "$PG/$DB" <<SQL
WITH accounts AS (SELECT array_agg(id ORDER BY code) AS ids FROM t_ledger__accounting.accounts),
entries AS (
    INSERT INTO t_ledger__accounting.entries (journal_id, date, status, total)
    SELECT '$JOURNAL'::uuid, DATE '2026-01-01' + (n % 365), 'posted', 10
    FROM generate_series(1, 50000) AS n
    RETURNING id, date
)
INSERT INTO t_ledger__accounting.lines (entry_id, seq, account_id, date, debit, credit)
SELECT e.id, side, a.ids[1 + (abs(hashtext(e.id::text || side)) % 40)], e.date,
       CASE side WHEN 1 THEN 10 ELSE 0 END, CASE side WHEN 2 THEN 10 ELSE 0 END
FROM entries e, accounts a, generate_series(1, 2) AS side;
ANALYZE t_ledger__accounting.lines;
SQL
echo "== trial balance over $(psql -tA "$PG/$DB" -c 'SELECT count(*) FROM t_ledger__accounting.lines') lines"
call GET "/accounting/reports/trial-balance?from=2026-07-01&to=2026-12-31" | head -c 300; echo
run -c4 -H "authorization: Bearer $TOKEN" "$URL/api/v1/accounting/reports/trial-balance?from=2026-07-01&to=2026-12-31"
