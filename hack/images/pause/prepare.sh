# shellcheck shell=bash
# Static, stripped: the image holds only this binary.
gcc -static -Os -s -Wall -Wextra -Werror -o "$ROOT/pause" "$RECIPE/pause.c"
