# A port past 65535 in the target.
status = 400
