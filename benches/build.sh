# Sourced by the benches/run-*.sh scripts (from the project's root): `build_bins DEFAULT_PROFILE
# PACKAGE...` builds the packages in $PROFILE (DEFAULT_PROFILE when unset) in the shared target
# directory, and sets $bin to the folder that holds their binaries.
build_bins() {
  local profile="${PROFILE:-$1}"
  shift
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ferry-target}"
  local packages=()
  for p in "$@"; do packages+=(-p "$p"); done
  cargo build -q --profile "$profile" "${packages[@]}"
  bin="$CARGO_TARGET_DIR/$([ "$profile" = dev ] && echo debug || echo "$profile")"
}
