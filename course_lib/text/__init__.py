"""Lessons 01-07: task code for the text lessons, translation (01-03), language modelling (05), decoding (06),
control codes
(06), masked-LM pretraining and transfer (07). Each module trains or uses a model from `course_lib.models`."""
