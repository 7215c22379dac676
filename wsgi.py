from buyersclub import create_app

app = create_app()
