"""Operations on the subsidy fund and its allocation: grants, policy versions, runs.

Every function that changes data takes the acting ``Actor`` first, checks its
role, flushes and audits; none commits (the request or command does).
"""
