"""Models: the 两库 rule pack and rule engine, scorers, explanations and clue ranking."""
