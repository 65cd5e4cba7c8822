"""One module per lesson with graded exercises: reference implementations and seeded test cases."""
