"""What the Space computes and how it is published: input preprocessing (`preprocess`), the handlers behind every
tab (`logic`), the About tab (`about`) and the Space folder put on the Hub (`publish`). UI wiring is in spaces_app/."""
