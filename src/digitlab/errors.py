"""The one error type a user can cause.

Every problem that comes from the user's input (a file, an image, a flag, a checkpoint) is raised as
a DigitlabError whose message is one line naming the thing and the fix. The command line prints it
without a traceback; anything else escaping is a bug in digitlab.
"""


class DigitlabError(Exception):
    """A problem with the user's input, described in one line with the fix."""
