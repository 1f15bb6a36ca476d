print("prox")
