"""Generic and operational jobs.

Each module may expose JOBS, SCHEDULES, ASSETS, ASSET_CHECKS and SENSORS lists.
"""
