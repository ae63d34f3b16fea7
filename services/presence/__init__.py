"""The presence service: who is online, when they were last seen, and who is typing where."""
