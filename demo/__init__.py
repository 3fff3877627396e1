"""Demo data for a fresh machine (``make run`` seeds it): regions, institutions, one user per role and
applications in every state. It sits above the apps it fills, so none of them imports it."""
