"""Staff changes: 离职继承 / 在职转接 of customers and groups, their results, and 客户流失提醒."""
