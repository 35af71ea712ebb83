"""Release tooling: the student starter generated from the reference solutions (`build`: `python -m autograder
release`), nbgrader solution markers (`markers`), stubs for stripped code (`stubs`), rendering of files and
handouts (`render`) and the check that nothing of a solution leaks into the release (`leaks`)."""
