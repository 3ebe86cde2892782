"""Every result rendered in one place: a Rich view for people, JSON for programs.

Both come from the same result dataclass (`to_dict()` is the JSON). The modules, each
importing only those before it:

- `text`: `literal()` (values shown exactly, never as markup), `FitTable` and `FieldList`
  (tables that fit the width), `message_line`, times, numbers, `short_reason`, `print_json`;
- `frames`: the per-frame tables and the capture, liveness, template and comparison lines;
- `users`: the views of `facer users` and the look-alike lines;
- `views`: one view per other command's result (inspect, compare, enroll, verify,
  identify, capture, doctor, demo, config);
- `evaluate`: the views of `facer evaluate`, with or without `--liveness`, and `print_all`.

Import a name from the module that defines it; this package re-exports nothing.
"""
