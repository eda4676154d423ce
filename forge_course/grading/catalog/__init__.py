"""The catalog of exercises: one module per exercise notebook, each exporting ``EXERCISE``.

A module is named ``ex`` + the notebook's ``NN_topic`` (``ex02_sequential_api.py`` for
``solutions/02_sequential_api.ipynb``) and found by :func:`forge_course.grading.exercises`
without being listed anywhere else: adding a lesson's exercise means adding its notebook
pair and its module. Each module also exports ``FAILING``: for every check id, a function
of the grading parameters that builds an answer that check must reject, so the test
suite proves that every check can fail.
"""
