"""Rule families. Each one looks at the analysed file and *reports* edits; none mutates a tree."""
