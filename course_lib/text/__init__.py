"""Lessons 01-03, 05-07, 15-16: task code of the text lessons: translation (01-03), language modelling (05),
decoding (05-06), control codes (06), masked-LM pretraining and transfer (07). Each module trains or uses a model
from `course_lib.models`."""
