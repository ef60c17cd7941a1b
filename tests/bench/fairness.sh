#!/usr/bin/env bash
# The fairness scenarios (tests/reliability/fairness.rs) at the length whose figures
# docs/reliability.md records: 9 interleaved rounds of 4 s phases, in a release build, with
# every round and the medians printed. `cargo test` runs the same scenarios shorter (3
# rounds of 3 s) with the same floors.
#   tests/bench/fairness.sh                    # release, 9 rounds of 4 s
#   EERP_FAIRNESS_ROUNDS=5 PROFILE=dev tests/bench/fairness.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export EERP_FAIRNESS_ROUNDS=${EERP_FAIRNESS_ROUNDS:-9}
export EERP_FAIRNESS_SECONDS=${EERP_FAIRNESS_SECONDS:-4}
exec cargo test --profile "${PROFILE:-release}" -p eerp-e2e --test reliability fairness -- --nocapture --test-threads=1
