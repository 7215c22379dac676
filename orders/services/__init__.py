"""Operations of the orders domain, one module per part of it.

* ``catalogue``: suppliers and products with their price breaks and rules;
* ``rounds``: the round lifecycle up to the close (draft, open, extend, cancel);
* ``commitments``: members' commitments, their compliance gates and history;
* ``progress``: the read model behind the members' round page.

Every function that changes data takes the acting ``Actor`` first, flushes
and audits; none commits (the request or CLI command does, once).
"""
