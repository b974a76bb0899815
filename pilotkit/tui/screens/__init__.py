"""The dashboard's screens: overview, pilot, logs, submit, and the modal confirm and help."""
