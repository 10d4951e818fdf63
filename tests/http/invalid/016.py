status = 400
