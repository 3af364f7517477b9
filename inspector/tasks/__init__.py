"""inspector.tasks"""
