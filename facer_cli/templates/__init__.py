"""Template maths: many frames into one template (`aggregate`), two templates into a decision
(`matching`)."""
