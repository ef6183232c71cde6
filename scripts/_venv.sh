# Sourced by scripts/demo and scripts/test: make .venv and install camstream into it,
# skipping pip when nothing it depends on changed since the last install (the
# install is editable, so source edits need no reinstall; pyproject.toml does).
ensure_venv() {
  local extras="$1" py=${PYTHON:-python3} stamp=.venv/.camstream-installed
  local hash have_hash="" have_extras=""
  if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$py" -m venv .venv
  fi
  hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
  [ -f "$stamp" ] && read -r have_hash have_extras < "$stamp"
  # An install with the test extra also serves the demo (it includes the base).
  if [ "$have_hash" = "$hash" ] && { [ -z "$extras" ] || [ "$have_extras" = "$extras" ]; }; then
    return 0
  fi
  echo "== installing camstream${extras:+ with [$extras]} into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
  echo "$hash $extras" > "$stamp"
}
