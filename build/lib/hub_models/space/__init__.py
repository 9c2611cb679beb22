"""What the Space computes: input preprocessing and the handlers behind every tab (UI wiring is in spaces_app/)."""
