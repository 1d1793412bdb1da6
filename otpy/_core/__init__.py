"""The actor core: processes, mailboxes, names, monitors, links and the node."""
