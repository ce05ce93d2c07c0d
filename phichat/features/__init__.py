"""The features built from turns, above the turn engine (``phichat.chat``).

A compare is two turns sharing one search (``compare``, summarised by
``compare_summary``); ``pinning`` hands an answer's sources to the next turns; an
itinerary answer reads as a day-by-day plan (``itinerary``); ``export`` writes a
conversation out. The engine imports none of them: a new feature is a module here.
"""
