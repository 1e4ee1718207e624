"""``gitplane audit``: who changed a resource, who approved it, what was issued, what ran.

* :mod:`reconciler.audit.read` reads a resource's history from git (spec commits, each
  plane's command and status logs);
* :mod:`reconciler.audit.model` builds the audit from it, purely: every event in time
  order, verified with the ledger's own checks, and what each plane runs now;
* :mod:`reconciler.audit.view` renders it (text for people, JSON for tools).
"""
