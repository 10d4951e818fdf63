requests = [{"method": "PUT", "expect_continue": True, "body": b"body"}]
