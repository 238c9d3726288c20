"""What the views and the tasks share: the product's operations."""
