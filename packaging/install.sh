#!/usr/bin/env bash
# Add the unpacked bundle to the applications menu of the current user (no root needed):
#   ./install.sh            install the menu entry and icons for this bundle folder
#   ./install.sh --remove   take them away again
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
entry="$data/applications/plexichat-desktop.desktop"
if [ "${1:-}" = "--remove" ]; then
  rm -f "$entry"
  find "$data/icons/hicolor" -name plexichat-desktop.png -delete 2>/dev/null || true
  rm -f "$data/icons/hicolor/scalable/apps/plexichat-desktop.svg"
  echo "Removed the PlexiChat Desktop menu entry."
  exit 0
fi
for dir in "$here"/share/icons/hicolor/*/apps; do
  size=$(basename "$(dirname "$dir")")
  mkdir -p "$data/icons/hicolor/$size/apps"
  cp "$dir"/plexichat-desktop.* "$data/icons/hicolor/$size/apps/"
done
mkdir -p "$data/applications"
# Exec= quoting per the Desktop Entry spec: inside double quotes, \ " ` $ take a
# backslash; then every backslash doubles again (the file format's own escaping), and a
# literal % doubles (field codes).
exe="$here/plexichat-desktop"
exe=${exe//\\/\\\\}; exe=${exe//\"/\\\"}; exe=${exe//\`/\\\`}; exe=${exe//\$/\\\$}
exe=${exe//\\/\\\\}; exe=${exe//%/%%}
while IFS= read -r line || [ -n "$line" ]; do
  if [ "${line%%=*}" = "Exec" ]; then
    printf 'Exec="%s" %%U\n' "$exe"
  else
    printf '%s\n' "$line"
  fi
done < "$here/share/applications/plexichat-desktop.desktop" > "$entry"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
echo "PlexiChat Desktop is in the applications menu ($entry)."
