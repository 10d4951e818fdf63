# An absolute-form target whose IPv6 literal never closes.
status = 400
