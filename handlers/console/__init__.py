"""The operators' console at ``/console/`` (issue 13): server-rendered pages over the admin API's queries."""
