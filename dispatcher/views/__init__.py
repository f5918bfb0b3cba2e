"""The read models that the API and the console show: typed, built in one place, rendered twice."""
