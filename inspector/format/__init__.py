"""inspector.format"""
