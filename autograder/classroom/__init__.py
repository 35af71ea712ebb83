"""Class-scale workflows on top of the engine: grading a whole class in parallel (`grade_all`), the gradebook and
CSV (`gradebook`), the Gradescope bundle (`gradescope`), Slurm (`cluster`), class summaries (`summary`) and the
feedback reports of one result (`report`)."""
