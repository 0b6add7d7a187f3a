#!/usr/bin/env bash
# Build the RecBole 1.2.1 peer environment used by bench/compare_recbole.py.
#
#   bash bench/recbole/setup.sh [--force]
#
# Creates bench/.recbole/venv (gitignored). Idempotent: when the venv already
# imports recbole with the pinned versions and the KGAT patch applied, it does
# nothing; --force deletes the venv and builds it again.
#
# RecBole 1.2.1 does not install cleanly on Python 3.11 + torch 2.13 today; the
# pins below are the minimum that make it run (see bench/README.md):
#   setuptools<81  ray 2.6.3 (a recbole pin) imports pkg_resources
#   numpy<2        ray 2.6.3 uses np.bool8; pandas<3 because pandas 3 needs numpy>=2
#   scipy<1.13     LightGCN & co. call dok_matrix._update, removed in scipy 1.13
#   dgl==1.1.3     undeclared KGAT dependency; --no-deps so pip cannot swap torch
#   patch          RecBole's KGAT calls the DGL<0.8 API (patches/kgat_dgl1x.patch)
# Two run-time fixes live in run_model.py, not here:
# TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 and the torch_scatter shim (shims/).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BASE="$ROOT/bench/.recbole"
VENV="$BASE/venv"
PY="${RECBOLE_PYTHON:-python3.11}"
STAMP="$VENV/.fusionrec-bench-ok"
# Bump when the pins change, so an old venv is rebuilt rather than trusted.
STAMP_TEXT="recbole==1.2.1 torch==2.13.0 dgl==1.1.3 kgat-patch v1"

if [[ "${1:-}" == "--force" ]]; then
  rm -rf "$VENV"
fi

check() {
  "$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import sys
want = {"recbole": "1.2.1", "dgl": "1.1.3"}
for name, ver in want.items():
    if md.version(name) != ver:
        sys.exit(f"{name} {md.version(name)} != {ver}")
if not md.version("torch").startswith("2.13.0"):
    sys.exit("torch " + md.version("torch"))
for name, bound in (("numpy", 2), ("pandas", 3)):
    if int(md.version(name).split(".")[0]) >= bound:
        sys.exit(f"{name} {md.version(name)} too new")
PY
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" ]] && check; then
  echo "RecBole venv ready: $VENV (use --force to rebuild)"
  exit 0
fi

mkdir -p "$BASE"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

# torch first, so RecBole's resolve sees it and pip never picks another build.
"${PIP[@]}" "torch==2.13.0"
# One resolve for RecBole and every pin (no numpy-2-then-downgrade round trip).
"${PIP[@]}" "torch==2.13.0" "recbole==1.2.1" "setuptools<81" "numpy<2" "pandas<3" "scipy<1.13"
# KGAT (CKE needs nothing extra): dgl without its dependencies (they are
# already present through recbole/ray: numpy, scipy, networkx, requests, tqdm, psutil).
"${PIP[@]}" --no-deps "dgl==1.1.3"

SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if patch -p0 -d "$SITE" --dry-run --reverse --force -s < "$HERE/patches/kgat_dgl1x.patch" >/dev/null 2>&1; then
  echo "KGAT patch already applied"
else
  patch -p0 -d "$SITE" --forward < "$HERE/patches/kgat_dgl1x.patch"
fi

"$VENV/bin/python" -m pip check || echo "warning: pip check reports the issues above (dgl was installed without deps)"
check
echo "$STAMP_TEXT" > "$STAMP"
echo "RecBole venv ready: $VENV"
