status = 501
