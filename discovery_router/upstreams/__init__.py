"""The backends: one supervised connection per upstream, and the calling client as it sees it."""
