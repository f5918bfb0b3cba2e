"""Where people look: the public alert page, its JSON feed and the website banner."""
